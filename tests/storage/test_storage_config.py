"""StoreConfig comes from the environment and mounted Secret files, and never prints secrets."""

from __future__ import annotations

from pathlib import Path

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
