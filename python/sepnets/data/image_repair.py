"""Finding the ImageNet files that Caffe's convert_imageset (OpenCV, colour)
would take in wrongly or drop, and re-encoding them as plain RGB JPEGs.

Real ImageNet holds grayscale JPEGs, CMYK JPEGs, PNG data named .JPEG and a
few damaged files. OpenCV's handling of the odd ones varies between versions
(CMYK in particular), and convert_imageset silently skips what it cannot
read, so every file is checked with Pillow first: plain RGB JPEGs go in
untouched, anything else that decodes is converted to an RGB JPEG, and what
does not decode is reported, never dropped silently.
"""
import os

OK, CONVERT, UNREADABLE = "ok", "convert", "unreadable"
JPEG_QUALITY = 95


def _describe(fmt, mode, path):
    ext = os.path.splitext(path)[1].lower()
    kind = {"L": "grayscale", "LA": "grayscale+alpha", "1": "1-bit", "CMYK": "CMYK",
            "P": "palette", "RGBA": "RGBA", "I;16": "16-bit", "I": "32-bit int",
            "F": "float", "YCbCr": "YCbCr"}.get(mode, mode)
    if fmt != "JPEG" and ext in (".jpeg", ".jpg", ".jpe"):
        return f"{kind} {fmt} data named {ext}"
    return f"{kind} {fmt}"


def inspect(path):
    """(status, reason): OK for an RGB JPEG that decodes, CONVERT for any other
    image that decodes, UNREADABLE (with Pillow's complaint) otherwise."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            fmt, mode = im.format, im.mode
            if fmt == "JPEG" and mode == "RGB":
                # Decoding at 1/8 scale still reads every entropy-coded byte,
                # so truncation shows, at a fraction of the full cost.
                im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
    except Exception as e:  # Pillow raises many types for bad data
        return UNREADABLE, f"{type(e).__name__}: {e}".replace("\n", " ").replace("\t", " ")
    if fmt == "JPEG" and mode == "RGB":
        return OK, "RGB JPEG"
    return CONVERT, _describe(fmt, mode, path)


def to_rgb_jpeg(path, dest):
    """Write `path` as an RGB JPEG at `dest`, applying EXIF orientation as
    OpenCV's imread does for the files that are not converted."""
    from PIL import Image, ImageOps
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            rgb = Image.new("RGB", rgba.size, (255, 255, 255))
            rgb.paste(rgba, mask=rgba.getchannel("A"))
        elif im.mode in ("I;16", "I;16B", "I;16L", "I"):
            rgb = im.point(lambda v: v / 256).convert("L").convert("RGB")
        else:
            rgb = im.convert("RGB")
        rgb.save(dest, "JPEG", quality=JPEG_QUALITY)


def check_and_repair(task):
    """Pool worker: task (path, dest) -> (status, reason); converts into dest."""
    path, dest = task
    status, reason = inspect(path)
    if status == CONVERT:
        try:
            to_rgb_jpeg(path, dest)
        except Exception as e:
            return UNREADABLE, f"conversion failed: {type(e).__name__}: {e}"
    return status, reason
