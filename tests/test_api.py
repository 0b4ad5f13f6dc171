"""The Tokenizer interface, Codes and input validation, on the tiny MaskGIT-VQGAN and real photos."""
import pytest
import torch

import zoo
from zoo import Codes, InputError
from zoo.families.vqgan import TINY_CONFIG


@pytest.fixture(scope="module")
def tok():
    torch.manual_seed(0)
    return zoo.build("vqgan", TINY_CONFIG).eval()


def test_encode_decode_round_trip_through_codes_file(tok, photos64, tmp_path):
    codes = tok.encode(photos64)
    assert codes.indices.shape == (2, 16, 1) and codes.indices.dtype == torch.int64
    assert codes.grid == (4, 4) and codes.codebook_sizes == (64,)
    path = tmp_path / "codes.safetensors"
    codes.save(path)
    loaded = Codes.load(path)
    assert torch.equal(loaded.indices, codes.indices) and loaded.grid == codes.grid
    assert loaded.model == codes.model
    direct, via_file = tok.decode(codes), tok.decode(loaded)
    assert torch.equal(direct, via_file)
    assert direct.shape == photos64.shape and 0 <= float(direct.min()) and float(direct.max()) <= 1


def test_codes_validation_messages():
    ok = Codes(torch.zeros(2, 4, 1, dtype=torch.int64), codebook_sizes=(8,))
    ok.validate()
    with pytest.raises(InputError, match="outside the codebook of size 8"):
        Codes(torch.full((2, 4, 1), 8, dtype=torch.int64), codebook_sizes=(8,)).validate()
    with pytest.raises(InputError, match="int64"):
        Codes(torch.zeros(2, 4, 1, dtype=torch.int32)).validate()
    with pytest.raises(InputError, match=r"\[B, T, G\]"):
        Codes(torch.zeros(2, 4, dtype=torch.int64)).validate()
    with pytest.raises(InputError, match="lengths must be in"):
        Codes(torch.zeros(2, 4, 1, dtype=torch.int64), lengths=torch.tensor([5, 1])).validate()
    with pytest.raises(InputError, match="scales sum"):
        Codes(torch.zeros(1, 4, 1, dtype=torch.int64), scales=(1, 4)).validate()
    # padding past an image's length is not checked against the codebook
    Codes(torch.tensor([[[1], [99]]]), lengths=torch.tensor([1]), codebook_sizes=(8,)).validate()


def test_decode_refuses_codes_outside_codebook(tok):
    bad = Codes(torch.full((1, 16, 1), 64, dtype=torch.int64), grid=(4, 4))
    with pytest.raises(InputError, match="outside the codebook"):
        tok.decode(bad)
    with pytest.raises(InputError, match="decodes exactly 16 tokens"):
        tok.decode(Codes(torch.zeros(1, 8, 1, dtype=torch.int64)))


@pytest.mark.parametrize("images, message", [
    (torch.rand(3, 64, 64), "add a batch dimension"),
    (torch.rand(1, 64, 64, 3), "channels-last"),
    (torch.rand(1, 1, 64, 64), "3 RGB channels"),
    ((torch.rand(1, 3, 64, 64) * 255).to(torch.uint8), "divide by 255"),
    (torch.rand(1, 3, 64, 64) * 2 - 1, r"\[-1, 1\]"),
    (torch.rand(1, 3, 64, 64) * 255, "divide by 255"),
    (torch.full((1, 3, 64, 64), float("nan")), "NaN"),
    (torch.rand(0, 3, 64, 64), "empty batch"),
    (torch.rand(1, 3, 32, 32), "takes 64x64 images"),
    ("photo.png", "float tensor"),
])
def test_bad_images_are_refused_clearly(tok, images, message):
    with pytest.raises(InputError, match=message):
        tok.encode(images)


def test_fixed_length_model_refuses_other_budgets(tok, photos64):
    with pytest.raises(InputError, match="always uses 16 tokens"):
        tok.encode(photos64, num_tokens=8)
    assert tok.encode(photos64, num_tokens=16).num_tokens == 16


def test_codes_cat_and_slicing(tok, photos64):
    a, b = tok.encode(photos64[:1]), tok.encode(photos64[1:])
    both = Codes.cat([a, b])
    assert torch.equal(both.indices, tok.encode(photos64).indices)
    assert torch.equal(both[1].indices, b.indices)


def test_codes_load_rejects_other_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(InputError, match="not a codes file"):
        Codes.load(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(InputError, match="cannot read codes file"):
        Codes.load(tmp_path / "junk.safetensors")


def test_spec_reports_layout(tok):
    spec = tok.spec.as_dict()
    assert spec["max_tokens"] == 16 and spec["grid"] == [4, 4] and spec["bits_per_token"] == 6
    assert spec["bytes_per_image_at_max"] == 12
