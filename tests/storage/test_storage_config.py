"""StoreConfig comes from the environment and mounted Secret files, and never prints secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from senseops_common.storage import StoreConfig


def test_from_env_reads_endpoints_flags_and_credentials() -> None:
    config = StoreConfig.from_env({
        "SENSEOPS_S3_ENDPOINT": "http://127.0.0.1:9000", "SENSEOPS_S3_PATH_STYLE": "true",
        "AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "sk", "SENSEOPS_COS_REGION": "ap-shanghai",
        "SENSEOPS_COS_INTERNAL": "1", "SENSEOPS_COS_PORT": "8080", "COS_SECRET_ID": "id",
        "COS_SECRET_KEY": "key", "COS_TOKEN": "sts-token", "SENSEOPS_STORAGE_TIMEOUT_S": "7",
    })
    assert (config.s3_endpoint, config.s3_path_style, config.s3_access_key) == ("http://127.0.0.1:9000", True, "ak")
    assert (config.cos_region, config.cos_internal_domain, config.cos_port) == ("ap-shanghai", True, 8080)
    assert (config.cos_secret_id, config.cos_token, config.request_timeout_s) == ("id", "sts-token", 7.0)


def test_defaults_when_nothing_is_set() -> None:
    config = StoreConfig.from_env({})
    assert config.s3_endpoint is None and not config.s3_path_style and config.cos_scheme == "https"
    assert config.s3_access_key is None


def test_mounted_secret_files_override_environment(tmp_path: Path) -> None:
    (tmp_path / "COS_SECRET_ID").write_text("from-file\n")
    (tmp_path / "AWS_SECRET_ACCESS_KEY").write_text("s3-from-file")
    config = StoreConfig.from_env({"COS_SECRET_ID": "from-env", "SENSEOPS_STORAGE_SECRET_DIR": str(tmp_path)})
    assert config.cos_secret_id == "from-file"
    assert config.s3_secret_key == "s3-from-file"


def test_repr_hides_credentials() -> None:
    config = StoreConfig(s3_secret_key="very-secret", cos_secret_key="also-secret", cos_token="tok")
    text = repr(config)
    assert "very-secret" not in text and "also-secret" not in text and "tok'" not in text


def test_default_store_is_local_file_store_without_cloud_config(tmp_path: Path) -> None:
    from senseops_common.storage import default_store_uri, parse_uri

    assert default_store_uri({"HOME": str(tmp_path)}) == f"file://{tmp_path}/.local/share/senseops/store/"
    assert parse_uri(default_store_uri({"HOME": str(tmp_path)})).scheme == "file"
    assert default_store_uri({"SENSEOPS_STORE_URI": "s3://bucket/p/"}) == "s3://bucket/p/"


@pytest.mark.parametrize(("settings", "expected_url"), [
    ({"cos_region": "ap-guangzhou"}, "https://b-1250000000.cos.ap-guangzhou.myqcloud.com/k"),
    ({"cos_region": "ap-guangzhou", "cos_internal_domain": True},
     "https://b-1250000000.cos-internal.ap-guangzhou.tencentcos.cn/k"),
    ({"cos_endpoint": "cos.accelerate.myqcloud.com"}, "https://b-1250000000.cos.accelerate.myqcloud.com/k"),
    ({"cos_region": "ap-guangzhou", "cos_scheme": "http", "cos_ip": "10.0.0.5", "cos_port": 8080},
     "http://10.0.0.5:8080/k"),
])
def test_cos_client_addresses(settings: dict[str, object], expected_url: str) -> None:
    from senseops_common.storage.cos_backend import make_cos_client

    client = make_cos_client(StoreConfig(cos_secret_id="id", cos_secret_key="key", **settings))  # type: ignore[arg-type]
    assert client._conf.uri(bucket="b-1250000000", path="k") == expected_url


def test_cos_sts_token_and_s3_path_style_endpoint() -> None:
    from senseops_common.storage.cos_backend import make_cos_client
    from senseops_common.storage.s3_backend import make_s3_client

    cos = make_cos_client(StoreConfig(cos_region="ap-beijing", cos_secret_id="i", cos_secret_key="k", cos_token="sts"))
    assert cos._conf._token == "sts"
    s3 = make_s3_client(StoreConfig(s3_endpoint="http://127.0.0.1:9000", s3_path_style=True,
                                    s3_access_key="a", s3_secret_key="b"))
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "bkt", "Key": "k"}, ExpiresIn=10)
    assert url.startswith("http://127.0.0.1:9000/bkt/k?")


def test_every_backend_satisfies_the_store_protocol(tmp_path: Path) -> None:
    from senseops_common.storage import Store, open_store

    for uri in (f"file://{tmp_path}/s", "s3://bucket/", "cos://bucket-1250000000/"):
        config = StoreConfig(cos_region="ap-guangzhou", cos_secret_id="i", cos_secret_key="k")
        assert isinstance(open_store(uri, config), Store)
