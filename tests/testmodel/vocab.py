"""A SenseVoice-compatible sentencepiece tokenizer, built without training data.

FunASR hard-codes token ids of SenseVoice-Small's 25055-piece vocabulary (``SenseVoiceSmall`` maps
``24884 → zh``, ``25016 → withitn``, ``25001 → HAPPY``… when it trains). A model that fine-tunes through
FunASR must therefore put its tags at exactly those ids. We write the ``ModelProto`` directly:

* ids 0/1/2 — ``<unk>`` (also the CTC blank), ``<s>``, ``</s>``, as in the stock model;
* ids 3… — ordinary pieces: ``▁``, printable ASCII, CJK punctuation, every CJK unified ideograph
  (U+4E00–U+9FFF, so any common Chinese text encodes), two-letter English pieces and whole words;
* unused padding up to 24883; the special block 24884–25054 with the tags as *user-defined* pieces, so
  ``<|zh|>`` always encodes to the single id 24884.

The ids FunASR hard-codes are exact (language 24884/24885/24888/24892/24896/24992, emotion 25001–25004
and 25009, ITN 25016/25017). The other names in the special block are our own arrangement: the stock
file's exact order there is not needed by any code path.

All ordinary pieces share one score, so sentencepiece's unigram Viterbi picks the segmentation with the
fewest pieces: known words become one token, unknown words fall back to letter pairs and letters.
``add_dummy_prefix`` is off, as in the stock tokenizer.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from pathlib import Path

VOCAB_SIZE = 25_055
SPECIAL_BLOCK_START = 24_884
TOKENIZER_FILENAME = "chn_jpn_yue_eng_ko_spectok.bpe.model"  # the stock file name, so configs match

# Languages: FunASR's lid_int_dict fixes zh/en/yue/ja/ko/nospeech; the remaining slots of the
# 108-language block are placeholders.
_LANGUAGE_IDS = {"zh": 24884, "en": 24885, "yue": 24888, "ja": 24892, "ko": 24896}
NOSPEECH_ID = 24992
_EVENTS_A = ["Speech", "BGM", "Applause", "Laughter", "Cry", "Sneeze", "Breath", "Cough"]  # 24993–25000
_EMOTIONS = [  # 25001–25009; FunASR's emo_dict fixes HAPPY/SAD/ANGRY/NEUTRAL and 25009 (unknown)
    "HAPPY",
    "SAD",
    "ANGRY",
    "NEUTRAL",
    "FEARFUL",
    "DISGUSTED",
    "SURPRISED",
    "EMO_OTHER",
    "EMO_UNKNOWN",
]
_EVENTS_B = ["Sing", "Speech_Noise", "GBG", "Event_UNK", "Event_OTHER_1", "Event_OTHER_2"]  # 25010–25015
ITN_IDS = {"withitn": 25016, "woitn": 25017}

_ORDINARY_SCORE = -10.0
_CJK_PUNCTUATION = "，。！？、：；“”‘’（）《》【】…—～·「」『』"
_COMMON_ENGLISH = (  # noqa: SIM905 - a word list reads better as text
    "the of and to a in is it you that he was for on are with as i his they be at one have this from "
    "or had by not word but what some we can out other were all there when up use your how said an "
    "each she which do their time if will way about many then them write would like so these her long "
    "make thing see him two has look more day could go come did number sound no most people my over "
    "know water than call first who may down side been now find any new work part take get place made "
    "live where after back little only round man year came show every good me give our under name very "
    "through just form sentence great think say help low line differ turn cause much mean before move "
    "right boy old too same tell does set three want air well also play small end put home read hand "
    "port large spell add even land here must big high such follow act why ask men change went light "
    "kind off need house picture try us again animal point mother world near build self earth father "
    "head stand own page should country found answer school grow study still learn plant cover food sun "
    "four between state keep eye never last let thought city tree cross farm hard start might story saw "
    "far sea draw left late run while press close night real life few north open seem together next "
    "white children begin got walk example ease paper group always music those both mark often letter "
    "until mile river car feet care second book carry took science eat room friend began idea fish "
    "mountain stop once base hear horse cut sure watch color face wood main enough plain girl usual "
    "young ready above ever red list though feel talk bird soon body dog family direct pose leave song "
    "measure door product black short numeral class wind question happen complete ship area half rock "
    "order fire south problem piece told knew pass since top whole king space heard best hour better "
    "true during hundred five remember step early hold west ground interest reach fast verb sing listen "
    "six table travel less morning ten simple several vowel toward war lay against pattern slow center "
    "love person money serve appear road map rain rule govern pull cold notice voice unit power town "
    "fine certain fly fall lead cry dark machine note wait plan figure star box noun field rest correct "
    "able pound done beauty drive stood contain front teach week final gave green oh quick develop ocean "
    "warm free minute strong special mind behind clear tail produce fact street inch multiply nothing "
    "course stay wheel full force blue object decide surface deep moon island foot system busy test "
    "record boat common gold possible plane stead dry wonder laugh thousand ago ran check game shape "
    "equate hot miss brought heat snow tire bring yes distant fill east paint language among hello "
    "welcome stream thanks thank please volume turn today weather nice"
).split()

SPECIAL_PIECES: dict[int, str] = {}


def _build_special_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for offset in range(NOSPEECH_ID - SPECIAL_BLOCK_START):
        table[SPECIAL_BLOCK_START + offset] = f"<|lang_{offset:03d}|>"
    for name, token_id in _LANGUAGE_IDS.items():
        table[token_id] = f"<|{name}|>"
    table[NOSPEECH_ID] = "<|nospeech|>"
    for offset, name in enumerate(_EVENTS_A):
        table[24993 + offset] = f"<|{name}|>"
    for offset, name in enumerate(_EMOTIONS):
        table[25001 + offset] = f"<|{name}|>"
    for offset, name in enumerate(_EVENTS_B):
        table[25010 + offset] = f"<|{name}|>"
    for name, token_id in ITN_IDS.items():
        table[token_id] = f"<|{name}|>"
    for token_id in range(25018, VOCAB_SIZE):
        table[token_id] = f"<|SPECIAL_TOKEN_{token_id - 25017}|>"
    return table


SPECIAL_PIECES.update(_build_special_table())
TAG_IDS: dict[str, int] = {piece[2:-2]: token_id for token_id, piece in SPECIAL_PIECES.items()}


def ordinary_pieces(words: Iterable[str] = ()) -> list[str]:
    """The ordinary (non-special) pieces in id order starting at 3, without duplicates."""
    pieces: list[str] = ["▁"]
    pieces += [c for c in string.printable if c.isprintable() and not c.isspace()]
    pieces += ["▁" + c for c in string.ascii_letters + string.digits]
    pieces += list(_CJK_PUNCTUATION)
    pieces += [chr(code) for code in range(0x4E00, 0xA000)]
    pieces += [a + b for a in string.ascii_lowercase for b in string.ascii_lowercase]
    for word in [*_COMMON_ENGLISH, *words]:
        for form in (word, word.capitalize()):
            pieces += [form, "▁" + form]
    seen: set[str] = set()
    unique = [p for p in pieces if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]
    limit = SPECIAL_BLOCK_START - 3
    if len(unique) > limit:
        raise ValueError(f"{len(unique)} ordinary pieces do not fit below id {SPECIAL_BLOCK_START}")
    return unique


def write_sentencepiece_model(path: Path, words: Iterable[str] = ()) -> Path:
    """Write the 25055-piece tokenizer to ``path`` (English ``words`` become single pieces)."""
    from sentencepiece import sentencepiece_model_pb2 as pb  # generated protobuf module, untyped

    proto = pb.ModelProto()  # type: ignore[attr-defined]
    kinds = pb.ModelProto.SentencePiece  # type: ignore[attr-defined]
    for piece, kind in (("<unk>", kinds.UNKNOWN), ("<s>", kinds.CONTROL), ("</s>", kinds.CONTROL)):
        proto.pieces.add(piece=piece, score=0.0, type=kind)
    for piece in ordinary_pieces(words):
        proto.pieces.add(piece=piece, score=_ORDINARY_SCORE, type=kinds.NORMAL)
    for token_id in range(len(proto.pieces), SPECIAL_BLOCK_START):
        proto.pieces.add(piece=f"<unused_{token_id}>", score=0.0, type=kinds.UNUSED)
    for token_id in range(SPECIAL_BLOCK_START, VOCAB_SIZE):
        proto.pieces.add(piece=SPECIAL_PIECES[token_id], score=0.0, type=kinds.USER_DEFINED)
    spec = proto.trainer_spec
    spec.model_type = pb.TrainerSpec.UNIGRAM  # type: ignore[attr-defined]
    spec.vocab_size = VOCAB_SIZE
    spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id = 0, 1, 2, -1
    spec.byte_fallback = False
    normalizer = proto.normalizer_spec
    normalizer.name = "identity"
    normalizer.add_dummy_prefix = False
    normalizer.remove_extra_whitespaces = True
    normalizer.escape_whitespaces = True
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(proto.SerializeToString())
    return path
