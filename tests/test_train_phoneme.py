"""The phoneme-CTC Wav2Vec2 job (``job: phoneme``): vocabulary, PER, synthesised data, a tiny run
whose export the fused audio encoder loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from lsray.eval.per import ctc_greedy_decode, edit_distance, phoneme_error_rate
from lsray.train.config import load_job_config
from lsray.train.phoneme_vocab import BLANK, label_symbols, phoneme_labels, phoneme_units, phoneme_vocabulary

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models train faster on one thread (no fork-join per op, no fight over a busy CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(tmp: Path, **overrides) -> object:
    """jobs/configs/tiny_phoneme.yaml with its output and data under ``tmp``."""
    data = yaml.safe_load((REPO / "jobs" / "configs" / "tiny_phoneme.yaml").read_text())
    data["out"] = str(tmp / "out")
    data["data"]["root"] = str(tmp / "data")
    data.update(overrides)
    return load_job_config(data)


# ---- vocabulary ----------------------------------------------------------------------------------
def test_vocabulary_has_the_blank_first_and_unique_symbols():
    vocab = phoneme_vocabulary()
    assert vocab[0] == BLANK and len(set(vocab)) == len(vocab)
    assert label_symbols(phoneme_labels(["p", "ˈaɪ"])) == ["p", "aɪ"]


@pytest.mark.parametrize("name, units", [
    ("ˈaɪ", ["aɪ"]), ("iː", ["i"]), ("ˈɔːɹ", ["ɔ", "ɹ"]), ("aɪə", ["aɪ", "ə"]), ("əl", ["ə", "l"]),
    ("ˈɑ̃", ["ɑ"]), ("ɐ̃ʊ", ["ɐʊ"]), ("tʃ", ["tʃ"]), ("ɫ", ["l"]), ("g", ["ɡ"]), ("ə-", ["ə"]),
    ("_:", []), ("||", []), ("_", []),
])
def test_espeak_names_normalise_to_inventory_units(name, units):
    assert phoneme_units(name) == units


def test_every_phoneme_of_the_world_has_a_label():
    """Each language's sentences, spoken by espeak: no phoneme (pauses aside) falls outside the inventory."""
    from lsray.synth import synthesize
    from lsray.synth.visemes import phoneme_key
    from lsray.synth.world import SENTENCES

    for lang, texts in SENTENCES.items():
        for text in texts:
            for p in synthesize(text, lang).phonemes:
                key = phoneme_key(p.name)
                assert phoneme_units(p.name) or key in ("", "_", "|", "||"), (lang, p.name)


# ---- phoneme error rate --------------------------------------------------------------------------
def test_ctc_greedy_decode_collapses_repeats_and_drops_blanks():
    assert ctc_greedy_decode([0, 3, 3, 0, 3, 5, 5, 0]) == [3, 3, 5]
    assert ctc_greedy_decode([0, 0, 0]) == []
    assert ctc_greedy_decode([2, 2, 9], blank=9) == [2]


def test_edit_distance_and_per_on_known_strings():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3 and edit_distance("abc", "") == 3 and edit_distance("abc", "abc") == 0
    # one substitution + one deletion over 4 reference phonemes
    result = phoneme_error_rate([["a", "b", "c"], ["d"]], [["a", "x", "c"], []])
    assert (result.per, result.errors, result.phonemes, result.utterances) == (0.5, 2, 4, 2)
    assert phoneme_error_rate([["a"]], [["a", "b", "c"]]).per == 2.0  # insertions can exceed 1
    with pytest.raises(ValueError):
        phoneme_error_rate([["a"]], [])


# ---- data ----------------------------------------------------------------------------------------
def test_utterances_follow_the_world_splits_and_are_deterministic(tmp_path):
    from lsray.synth import world
    from lsray.train.phoneme_data import utterance_spec

    data = tiny_config(tmp_path).data
    train = [utterance_spec(data, "train", i) for i in range(40)]
    test = [utterance_spec(data, "test", i) for i in range(48)]
    assert train == [utterance_spec(data, "train", i) for i in range(40)]
    test_texts = {t for _, t in world.sentences("test")}
    assert not test_texts & {s.text for s in train}
    assert {s.text for s in test} == test_texts  # every test sentence ...
    assert {s.voice for s in test} == {v for lang in world.LANGUAGES for v in world.voices("test", lang)}  # ... and voice
    assert all(s.voice in world.voices("train", s.language) for s in train)
    train_texts = {t for _, t in world.sentences("train")}
    assert 0 < sum(s.text in train_texts for s in train) < len(train)  # sentences and recombined texts
    assert all(data.rate[0] <= s.rate <= data.rate[1] for s in train + test)


def test_syllables_recombine_into_pseudo_words():
    from lsray.train.phoneme_data import _syllables

    assert _syllables("Buongiorno") == ["buon", "gior", "no"] and _syllables("bottle") == ["bot", "tle"]


def test_the_cache_is_written_once_and_collates_to_padded_batches(tmp_path):
    from lsray.train.phoneme_data import SAMPLE_RATE, collate_utterances, ensure_cache, local_utterances

    data = tiny_config(tmp_path).data
    uris = ensure_cache(data, "test")
    stamp = [Path(u).stat().st_mtime_ns for u in uris]
    rows = local_utterances(data, "test")
    assert [Path(u).stat().st_mtime_ns for u in ensure_cache(data, "test")] == stamp  # a rerun resumes
    assert len(rows) == data.test_utterances and all(r["wave"].dtype == np.int16 for r in rows)
    assert all(0.3 * SAMPLE_RATE < len(r["wave"]) < 8 * SAMPLE_RATE and len(r["labels"]) > 5 for r in rows)
    batch = collate_utterances(rows[:3])
    longest = max(len(r["wave"]) for r in rows[:3])
    assert batch["wave"].shape == (3, longest) and batch["lengths"].tolist() == [len(r["wave"]) for r in rows[:3]]
    assert (batch["labels"][0, : len(rows[0]["labels"])] > 0).all() and (batch["labels"] == -100).any()


# ---- the job -------------------------------------------------------------------------------------
def test_loss_goes_down_on_a_fixed_batch(tmp_path):
    from lsray.train.phoneme import PhonemeJob
    from lsray.train.phoneme_data import collate_utterances, local_utterances

    cfg = tiny_config(tmp_path, steps=30, warmup_steps=0)
    torch.manual_seed(0)
    job = PhonemeJob(cfg, torch.device("cpu"))
    batch = collate_utterances(local_utterances(cfg.data, "train", limit=2))
    losses = [job.step(batch, step)["ctc"] for step in range(30)]
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.75 * np.mean(losses[:5]), losses


def test_the_real_config_gives_a_50_hz_model_as_wide_as_the_phoneme_branch():
    from lsray.audio.phoneme import PHONEME_DIM
    from lsray.train.phoneme import phoneme_model_config

    cfg = load_job_config(REPO / "jobs" / "configs" / "phoneme.yaml")
    w2v = phoneme_model_config(cfg)
    assert np.prod(w2v.conv_stride) == 320 and w2v.vocab_size == len(phoneme_vocabulary()) and w2v.pad_token_id == 0
    assert w2v.hidden_size == PHONEME_DIM  # the export's projection is a pure standardisation


def test_export_loads_into_the_fused_encoder_with_unit_scale_phoneme_entries(tmp_path):
    from lsray.audio.fused import FusedAudioEncoder
    from lsray.audio.phoneme import PHONEME_DIM
    from lsray.audio.phoneme import PhonemeEncoder
    from lsray.train.phoneme_data import PCM_SCALE, local_utterances
    from lsray.train.runner import train_local
    from lsray.train.tiny import tiny_whisper

    cfg = tiny_config(tmp_path)
    train_local(cfg)
    out = Path(cfg.out)
    report = json.loads((out / "eval.json").read_text())
    assert report["utterances"] == cfg.data.test_utterances and report["phonemes"] > 0 and report["per"] >= 0
    assert {"per", "utterances", "phonemes"} <= set(report["train"]) and report["baselines"]["empty"] == 1.0
    vocab = json.loads((out / "vocab.json").read_text())
    assert sorted(vocab, key=vocab.get) == list(phoneme_vocabulary())

    phoneme = PhonemeEncoder.from_pretrained(out, device=torch.device("cpu"))
    assert phoneme.model.config.vocab_size == len(vocab) and phoneme.dim == PHONEME_DIM
    whisper = tiny_whisper()
    fused = FusedAudioEncoder(whisper, phoneme)
    wave = local_utterances(cfg.data, "test", limit=1)[0]["wave"].astype(np.float32) / PCM_SCALE  # held out
    tokens = fused.features(wave)  # (T, L, C + 128)
    rows = whisper.features(wave).shape[0]
    assert tokens.shape == (rows, whisper.num_layers, whisper.dim + PHONEME_DIM)
    phon = tokens[..., whisper.dim:]
    assert torch.isfinite(phon).all()
    assert 0.25 < float(phon.std()) < 4.0 and float(phon.mean().abs()) < 1.0  # the standardised hidden states


def test_standardising_projection_gives_unit_scale_at_any_width():
    from lsray.train.phoneme import standardising_projection

    g = torch.Generator().manual_seed(0)
    for hidden in (32, 128, 256):
        h = torch.randn(4000, hidden, generator=g) * torch.linspace(0.1, 5, hidden) + 3.0  # (F, H)
        weight, bias = standardising_projection(h.mean(0), h.std(0), 128)
        y = h @ weight.T + bias  # (F, 128)
        assert y.shape == (4000, 128)
        assert float(y.mean(0).abs().max()) < 0.05 and 0.8 < float(y.pow(2).mean()) < 1.2, hidden
