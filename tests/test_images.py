"""Reading images in any mode as RGB, the crop protocols, and clear errors for bad files."""
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import photo
from zoo import InputError
from zoo.images import (adm_center_crop, center_crop_resize, list_image_files, load_images, make_grid, psnr,
                        save_image, to_tensor)


@pytest.fixture
def astronaut():
    return Image.fromarray(photo("astronaut"))


@pytest.mark.parametrize("mode", ["RGB", "L", "LA", "RGBA", "P", "CMYK", "I;16", "I", "F", "1"])
def test_any_mode_reads_as_rgb(astronaut, mode, tmp_path):
    img = astronaut.convert(mode) if mode not in ("I;16", "I", "F") else astronaut.convert("L").convert(mode)
    if mode == "I;16":
        img = Image.fromarray((np.asarray(astronaut.convert("L"), dtype=np.uint16) * 257))
    t = to_tensor(img)
    assert t.shape == (3, 512, 512) and t.dtype == torch.float32
    assert 0 <= float(t.min()) and float(t.max()) <= 1
    if mode in ("L", "I;16", "I", "F"):
        grey = torch.from_numpy(np.array(astronaut.convert("L"))).float() / 255
        assert torch.allclose(t[0], grey, atol=1 / 255 + 1e-6) and torch.equal(t[0], t[1])
    if mode in ("RGB", "RGBA", "CMYK"):
        ref = torch.from_numpy(np.array(astronaut)).permute(2, 0, 1).float() / 255
        assert (t - ref).abs().mean() < 0.02
    ext = "tiff" if mode in ("I;16", "I", "F", "CMYK") else "png"
    path = tmp_path / f"img.{ext}"
    img.save(path)
    assert torch.allclose(to_tensor(path), t, atol=1 / 255 + 1e-6)


def test_transparency_composited_on_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent
    assert torch.allclose(to_tensor(Image.fromarray(rgba, "RGBA")), torch.ones(3, 4, 4))
    assert torch.allclose(to_tensor(rgba), torch.ones(3, 4, 4))


def test_arrays_and_tensors():
    arr = photo("coffee")
    t = to_tensor(arr)
    assert torch.equal(to_tensor(torch.from_numpy(arr)), t)  # HWC uint8 tensor
    assert torch.equal(to_tensor(t), t)  # CHW float tensor
    assert torch.allclose(to_tensor(arr.astype(np.float32) / 255), t)
    with pytest.raises(InputError, match=r"must be in \[0, 1\]"):
        to_tensor(arr.astype(np.float32))
    with pytest.raises(InputError, match="dtype"):
        to_tensor(arr.astype(np.int8))
    with pytest.raises(InputError, match="HxW"):
        to_tensor(np.zeros((4, 4, 5), np.uint8))


def test_corrupt_and_truncated_files_named(tmp_path, astronaut):
    good = tmp_path / "good.png"
    astronaut.save(good)
    data = good.read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    for name in ("truncated.png", "junk.jpg"):
        with pytest.raises(InputError, match=name):
            to_tensor(tmp_path / name)
    with pytest.raises(InputError, match="not found"):
        to_tensor(tmp_path / "missing.png")


def test_center_crop_protocol_is_torchvision_on_the_pil_image():
    import torchvision.transforms as T

    img = Image.fromarray(photo("chelsea"))  # 300x451
    ours = center_crop_resize(img, 128)
    ref = T.Compose([T.Resize(128, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(128), T.ToTensor()])(img)
    assert ours.shape == (3, 128, 128)
    assert torch.equal(ours, ref)  # bit for bit (tests/test_eval_reference.py covers files and every reader)
    # a float image off the 8-bit grid: the same Pillow filter on float planes, within rounding of the 8-bit path
    soft = to_tensor(img) * 0.999
    assert (center_crop_resize(soft, 128) - ref * 0.999).abs().max() < 1.5 / 255


def test_adm_crop_shape_and_content():
    img = photo("astronaut")
    out = adm_center_crop(torch.from_numpy(img).permute(2, 0, 1).float() / 255, 64)
    assert out.shape == (3, 64, 64)
    assert abs(float(out.mean()) - img.mean() / 255) < 0.05


def test_load_images_batches_and_errors(tmp_path):
    batch = load_images([photo("astronaut"), photo("coffee")], size=32)
    assert batch.shape == (2, 3, 32, 32)
    with pytest.raises(InputError, match="different sizes"):
        load_images([photo("astronaut"), photo("coffee")])
    with pytest.raises(InputError, match="no images"):
        load_images([])
    (tmp_path / "sub").mkdir()
    Image.fromarray(photo("coffee")).save(tmp_path / "sub" / "c.png")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_image_files([tmp_path])] == ["c.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image files"):
        list_image_files([tmp_path / "empty"])


def test_png_round_trip_grid_and_psnr(tmp_path):
    batch = load_images([photo("astronaut"), photo("coffee")], size=32)
    path = save_image(batch[0], tmp_path / "a.png")
    assert torch.allclose(to_tensor(path), batch[0], atol=0.5 / 255 + 1e-6)
    grid = make_grid([batch, batch.flip(0)])
    assert grid.shape == (3, 2 * 34 + 2, 2 * 34 + 2)
    assert torch.isinf(psnr(batch, batch)).sum() == 0 and float(psnr(batch, batch)[0]) > 100
    assert float(psnr(batch, 1 - batch)[0]) < 15
