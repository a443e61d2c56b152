"""How a model family turns uint8 pixels into its float32 input (numpy only, framework-free).

A transform has two stages:

1. **geometry** (uint8 in, uint8 out, done once per split and cached): with ``resize=None`` the
   image is not resampled; a smaller one is zero-padded to ``size`` (``pad // 2`` before, the rest
   after, the Fashion-MNIST rule of :func:`weightshare.networks.tensors.images_to_tensor`) and a
   larger one centre-cropped. With ``resize=R`` the shorter side is resized to ``R`` pixels
   (aspect kept, the longer side truncated to an int, PIL antialiased ``interpolation``), then
   the centre ``size x size`` crop is taken (torchvision's ``Resize(R)`` + ``CenterCrop(S)``).
2. **normalisation** (per batch): ``x = (pixel / divisor - mean[c]) / std[c]`` in float32, in the
   layout the model wants, ``NCHW`` or ``NHWC``.

For Fashion-MNIST networks the result is bit-identical to ``images_to_tensor`` (a test pins it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from weightshare.errors import UserError

LAYOUTS = ("NCHW", "NHWC")
INTERPOLATIONS = ("bilinear", "bicubic")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ImageTransform:
    """Preprocessing of one model family.

    Attributes:
        size: side ``S`` of the square model input, in pixels.
        resize: shorter side (pixels) images are resized to before the centre crop; None pads
            or crops without resampling.
        interpolation: ``bilinear`` or ``bicubic`` (PIL, antialiased), used when resizing.
        channels: 1 (grayscale) or 3 (RGB).
        divisor: pixels are divided by it first (255.0 maps them to [0, 1]; 1.0 keeps 0..255).
        mean, std: per-channel (or one shared) offset and scale applied after the division.
    """

    size: int
    resize: int | None = None
    interpolation: str = "bilinear"
    channels: int = 3
    divisor: float = 255.0
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}")
        if self.channels not in (1, 3) or len(self.mean) not in (1, self.channels):
            raise ValueError("channels must be 1 or 3, with one mean/std or one per channel")

    @property
    def geometry(self) -> tuple:
        """The part that decides the cached uint8 pixels: ``(size, resize, interpolation, C)``."""
        return (self.size, self.resize, self.interpolation, self.channels)

    def with_size(self, size: int) -> ImageTransform:
        """The same family at another input side (resize scaled in proportion)."""
        from dataclasses import replace

        resize = None if self.resize is None else round(self.resize * size / self.size)
        return replace(self, size=size, resize=resize)


def fashion_mnist_transform(size: int = 28) -> ImageTransform:
    """Fashion-MNIST networks: 28x28 zero-padded to ``size``, training-set mean and std."""
    from weightshare.networks.datasets import PIXEL_MEAN, PIXEL_STD

    return ImageTransform(size, None, channels=1, mean=(PIXEL_MEAN,), std=(PIXEL_STD,))


def imagenet_transform(
    size: int = 224, resize: int | None = None, interpolation: str = "bilinear"
) -> ImageTransform:
    """torchvision ImageNet evaluation: resize to ``resize`` (default ``round(size / 0.875)``),
    centre-crop ``size``, [0, 1], ImageNet mean and std."""
    return ImageTransform(size, resize or round(size / 0.875), interpolation)


def pad_or_crop(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W, C) -> (N, size, size, C): centred zero padding or centre crop, no
    resampling. Padding puts ``pad // 2`` pixels before and the rest after."""
    out = images
    for axis in (1, 2):
        extra = size - out.shape[axis]
        if extra > 0:
            width = [(0, 0)] * out.ndim
            width[axis] = (extra // 2, extra - extra // 2)
            out = np.pad(out, width)
        elif extra < 0:
            start = round(-extra / 2.0)
            out = np.take(out, range(start, start + size), axis=axis)
    return out


def fit_image(image, transform: ImageTransform) -> np.ndarray:
    """One PIL image -> uint8 (S, S, C) by the transform's geometry (torchvision's rules)."""
    from PIL import Image

    image = image.convert("RGB" if transform.channels == 3 else "L")
    if transform.resize is not None:
        w, h = image.size
        short, long_ = (w, h) if w <= h else (h, w)
        new_long = int(transform.resize * long_ / short)
        new_w, new_h = (transform.resize, new_long) if w <= h else (new_long, transform.resize)
        method = Image.BILINEAR if transform.interpolation == "bilinear" else Image.BICUBIC
        if (new_w, new_h) != (w, h):
            image = image.resize((new_w, new_h), method)
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return pad_or_crop(array[None], transform.size)[0]


def geometry_of_array(images: np.ndarray, transform: ImageTransform) -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, C) -> uint8 (N, S, S, C) by the transform's geometry.

    Without ``resize`` this is pure padding/cropping (fast, exact); with it every image goes
    through :func:`fit_image`.
    """
    if images.ndim == 3:
        images = images[..., None]
    channels = images.shape[-1]
    if channels not in (1, 3):
        raise UserError(f"images must have 1 or 3 channels; got shape {images.shape}")
    if channels != transform.channels:
        if channels == 1:
            images = np.repeat(images, 3, axis=-1)
        else:  # ITU-R 601-2 luma, as PIL's convert("L")
            luma = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
            images = np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
    if transform.resize is None:
        return pad_or_crop(images, transform.size)
    from PIL import Image

    mode = "L" if images.shape[-1] == 1 else "RGB"
    return np.stack(
        [
            fit_image(Image.fromarray(img[..., 0] if mode == "L" else img, mode), transform)
            for img in images
        ]
    )


def normalise(pixels: np.ndarray, transform: ImageTransform, layout: str) -> np.ndarray:
    """uint8 (N, S, S, C) -> float32 model input in ``layout`` (``NCHW`` or ``NHWC``).

    ``x = (pixel / divisor - mean) / std`` computed in float32, operation by operation, which is
    bit-identical to :func:`weightshare.networks.tensors.images_to_tensor` for Fashion-MNIST.
    """
    x = pixels.astype(np.float32) / np.float32(transform.divisor)
    if layout == "NCHW":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        shape = (1, -1, 1, 1)
    else:
        shape = (1, 1, 1, -1)
    mean = np.asarray(transform.mean, np.float32).reshape(shape)
    std = np.asarray(transform.std, np.float32).reshape(shape)
    return (x - mean) / std
