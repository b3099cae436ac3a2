"""cnnlab.data: data sets, batching and augmentation (numpy + Pillow only; needs no model).

Arrays follow the library convention: images ``(N, C, H, W)`` float32 in [0, 1] (``dtype=np.uint8``
for raw bytes), labels ``(N,)`` int64.

Data sets:
    load_mnist(path=None, split='train')      IDX files, gz or raw; None: bundled 10k/2k subset
    load_cifar10(path=None, split='train')    python batches, binary batches, image folder/zip, tar.gz
    load_image_folder(path, subdir=None, ...) root/<class>/<image>, directory or .zip, cached
    load_image(path, size=None, mode='RGB')   one image -> (C, H, W)
    read_idx / write_idx, read_cifar_python_batch / read_cifar_binary_batch
    download_mnist(dest) / download_cifar10(dest) / download_url(urls, dest, md5=...)

Batching and augmentation:
    iterate_minibatches(x, y, batch_size, shuffle=True, rng=None, drop_last=False)
    DataLoader(x, y, batch_size, shuffle=True, drop_last=False, transform=None, seed=None)
    train_val_split(x, y, val_fraction=0.1)
    channel_stats(x), standardize(x, mean, std), destandardize(x, mean, std)
    random_crop(x, size=None, padding=4, rng=None), random_flip(x, rng=None), flip_horizontal(x)
"""
from ._paths import atomic_open, cache_dir, data_dir
from .batching import DataLoader, iterate_minibatches, train_val_split
from .cifar import (CIFAR10_CLASSES, find_cifar10, load_cifar10, read_cifar_binary_batch,
                    read_cifar_python_batch)
from .download import (CIFAR10_MD5, CIFAR10_URL, MNIST_MD5, MNIST_MIRRORS, ChecksumError,
                       DownloadError, download_cifar10, download_mnist, download_url, file_md5,
                       safe_extract_tar)
from .folder import IMAGE_EXTENSIONS, load_image_folder
from .idx import read_idx, write_idx
from .image import load_image, save_image
from .mnist import MNIST_FILES, bundled_mnist_dir, load_mnist
from .safe_pickle import RestrictedUnpickler, restricted_load, restricted_loads
from .transforms import (channel_stats, destandardize, flip_horizontal, random_crop, random_flip,
                         standardize)

__all__ = [
    "load_mnist", "bundled_mnist_dir", "MNIST_FILES", "read_idx", "write_idx",
    "load_cifar10", "find_cifar10", "CIFAR10_CLASSES", "read_cifar_python_batch",
    "read_cifar_binary_batch", "load_image_folder", "IMAGE_EXTENSIONS", "load_image", "save_image",
    "download_url", "download_mnist", "download_cifar10", "safe_extract_tar", "file_md5",
    "DownloadError", "ChecksumError", "MNIST_MIRRORS", "MNIST_MD5", "CIFAR10_URL", "CIFAR10_MD5",
    "RestrictedUnpickler", "restricted_load", "restricted_loads",
    "iterate_minibatches", "DataLoader", "train_val_split",
    "channel_stats", "standardize", "destandardize", "random_crop", "random_flip", "flip_horizontal",
    "atomic_open", "cache_dir", "data_dir",
]
