"""Process set-up that ``build_context`` does for every pipeline process."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from moderation.pipeline.context import return_freed_images_to_the_os


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_freed_image_memory_goes_back_to_the_os_between_decodes():
    # in a fresh interpreter: RSS after decoding large PNGs on several threads and freeing them
    # stays near the baseline with the fixed mmap threshold (glibc's adaptive one kept
    # 104-166 MiB here: freed blocks stay in the threads' heaps)
    script = """
import io, sys
from concurrent.futures import ThreadPoolExecutor
from PIL import Image
from moderation.images import decode_image
from moderation.pipeline.context import return_freed_images_to_the_os
if sys.argv[1] == "fixed":
    assert return_freed_images_to_the_os()
buf = io.BytesIO()
Image.new("RGBA", (4000, 4000), (1, 2, 3, 128)).save(buf, format="PNG", compress_level=1)
data = buf.getvalue()
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
base = rss()
with ThreadPoolExecutor(4) as pool:
    list(pool.map(lambda _: decode_image(data).image.size, range(8)))
print(rss() - base)
"""
    kept = {
        how: float(
            subprocess.run(
                [sys.executable, "-c", script, how], capture_output=True, text=True, check=True
            ).stdout.split()[-1]
        )
        for how in ("fixed",)
    }
    image_mib = 4000 * 4000 * 4 / 2**20  # 61 MiB a decoded image
    assert kept["fixed"] < image_mib / 2, kept


def test_it_says_whether_it_could_set_the_allocator():
    assert isinstance(return_freed_images_to_the_os(), bool)
