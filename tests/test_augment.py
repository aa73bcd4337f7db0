"""§4.1 augmentation and evaluation views, against per-image slicing and the noise's stated law."""
import numpy as np
import torch

from alexnet.data.augment import crop_flip, draw, eval_views, pca_lambda, pca_shift, train_batch, view_offsets


def test_crop_flip_equals_slicing():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, 3, 20, 20), dtype=torch.uint8)
    d = draw(6, 20, 13, g)
    out = crop_flip(x, d.ys, d.xs, d.flip, 13)
    for i in range(6):
        y, x0 = int(d.ys[i]), int(d.xs[i])
        ref = x[i, :, y:y + 13, x0:x0 + 13]
        assert torch.equal(out[i], ref.flip(-1) if d.flip[i] else ref)
    assert d.flip.any() and (~d.flip).any()


def test_crops_cover_all_positions():
    g = torch.Generator().manual_seed(1)
    d = draw(20000, 256, 224, g)
    assert d.ys.min() == 0 and d.ys.max() == 32 and d.xs.min() == 0 and d.xs.max() == 32  # (256-224+1) positions
    assert abs(d.flip.float().mean().item() - 0.5) < 0.02


def test_ten_patch_geometry():
    assert view_offsets(256, 224, "10crop") == [(0, 0, False), (0, 32, False), (32, 0, False), (32, 32, False),
                                              (16, 16, False), (0, 0, True), (0, 32, True), (32, 0, True),
                                              (32, 32, True), (16, 16, True)]
    x = torch.randint(0, 256, (2, 3, 256, 256), dtype=torch.uint8)
    mean = torch.rand(3, 256, 256) * 255
    v = eval_views(x, 224, mean, "10crop")
    assert v.shape == (10, 2, 3, 224, 224)
    xm = x.float() - mean
    torch.testing.assert_close(v[0], xm[:, :, :224, :224])          # top-left
    torch.testing.assert_close(v[3], xm[:, :, 32:, 32:])            # bottom-right
    torch.testing.assert_close(v[4], xm[:, :, 16:240, 16:240])      # centre
    torch.testing.assert_close(v[9], xm[:, :, 16:240, 16:240].flip(-1))
    torch.testing.assert_close(eval_views(x, 224, mean, "center")[0], v[4])


def test_train_batch_subtracts_mean_at_the_same_place_then_adds_colour_noise():
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    mean = torch.rand(3, 16, 16) * 255
    eigvecs, lam = torch.linalg.qr(torch.randn(3, 3))[0], torch.tensor([50.0, 10.0, 2.0])
    d = draw(4, 16, 12, g)
    out = train_batch(x, d, 12, mean, eigvecs, lam)
    shift = (d.alpha * lam) @ eigvecs.T
    for i in range(4):
        y, x0 = int(d.ys[i]), int(d.xs[i])
        ref = x[i, :, y:y + 12, x0:x0 + 12].float() - mean[:, y:y + 12, x0:x0 + 12]  # §2 then §4.1
        ref = ref.flip(-1) if d.flip[i] else ref
        torch.testing.assert_close(out[i], ref + shift[i][:, None, None])


def test_pca_noise_statistics():
    # noise = P (a * lam), a ~ N(0, 0.1^2): mean 0 and covariance P diag(0.01 lam^2) P^T
    g = torch.Generator().manual_seed(3)
    eigvecs = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))[0].float()
    eigvals = torch.tensor([3000.0, 200.0, 20.0])  # covariance eigenvalues on the 0..255 scale
    lam = pca_lambda(eigvals, "std")
    alpha = draw(200_000, 8, 8, g, pca_std=0.1).alpha
    noise = pca_shift(alpha, eigvecs, lam).double()
    expect = (eigvecs @ torch.diag(0.01 * lam ** 2) @ eigvecs.T).double()
    assert noise.mean(0).abs().max() < 0.05
    torch.testing.assert_close(torch.cov(noise.T), expect, rtol=0.02, atol=0.05)
    assert torch.allclose(lam ** 2, eigvals)  # "std": lam is the standard deviation along each axis
    torch.testing.assert_close(pca_lambda(eigvals, "variance"), eigvals / 255)


def test_draws_are_a_function_of_the_seed():
    a = draw(8, 40, 32, torch.Generator().manual_seed(5))
    b = draw(8, 40, 32, torch.Generator().manual_seed(5))
    assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("ys", "xs", "flip", "alpha"))


def test_without_random_crops_every_draw_is_the_centre_patch():
    a = draw(64, 40, 32, torch.Generator().manual_seed(5), random_crop=False)
    b = draw(64, 40, 32, torch.Generator().manual_seed(5))
    assert (a.ys == 4).all() and (a.xs == 4).all() and b.ys.unique().numel() > 1  # (40 - 32) / 2
    assert torch.equal(a.flip, b.flip) and torch.equal(a.alpha, b.alpha)  # the other choices do not change


def test_the_augmenter_follows_the_data_section(tiny_store):
    """One owner: the training step and the benchmarks' store_augmenter both build an Augmenter
    from a data section, flip and pca_scale included."""
    from alexnet.config import DataConfig
    from alexnet.data.augment import Augmenter, store_augmenter
    from alexnet.data.store import open_store
    store = open_store(tiny_store)
    aug = Augmenter.of(DataConfig(crop=64, flip=False, pca_scale="variance", mean_image=False), store, torch.device("cpu"))
    d = aug.draw(32, store.size, torch.Generator().manual_seed(0))
    assert not d.flip.any() and aug.mean is None
    torch.testing.assert_close(aug.lam, store.pca_eigvals / 255)
    images = store.split("train").read(np.arange(4))
    paper = Augmenter.of(DataConfig(crop=64), store, torch.device("cpu"))
    want = paper(images, paper.draw(4, store.size, torch.Generator().manual_seed(3)))
    got = store_augmenter(store, torch.device("cpu"), 64, torch.Generator().manual_seed(3))(images)
    assert torch.equal(got, want)
