"""ImageNet (ILSVRC-2012 layout) into the LMDBs the GoogLeNet and SEP-Net
prototxts read, with Caffe's own convert_imageset and compute_image_mean so
the stored images are exactly what Caffe's tools would produce.

Writes OUT/{train_lmdb, val_lmdb, mean.binaryproto, synset_words.txt,
train.txt, val.txt, skipped.txt}. Labels follow the sorted wnids of the
training folders (Caffe's convention). Every file is checked first
(``image_repair``): odd formats are converted to RGB JPEGs in a staging
folder, unreadable ones are listed in skipped.txt (or stop the run with
--strict), and the LMDB's record count is checked against the list, so
nothing is dropped silently. Everything is built in a staging folder inside
OUT and moved into place only at the end.
"""
import multiprocessing
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time

import numpy as np

from ..caffeio.env import caffe_tool
from ..errors import UserError
from ..fileio import atomic_path, check_output_dir, refuse_overwrite, require_file
from . import image_repair
from .datum_lmdb import lmdb_count

OUTPUTS = ("train_lmdb", "val_lmdb", "mean.binaryproto", "synset_words.txt",
           "train.txt", "val.txt", "skipped.txt")
_WNID = re.compile(r"^n\d{8}$")


# ------------------------------------------------------------------ lists

def _visible(names):
    return sorted(n for n in names if not n.startswith("."))


def class_folders(train_dir):
    """Sorted class folder names of a train/<wnid>/ tree."""
    if not os.path.isdir(train_dir):
        raise UserError(train_dir, "training folder not found")
    wnids = [d for d in _visible(os.listdir(train_dir))
             if os.path.isdir(os.path.join(train_dir, d))]
    if not wnids:
        raise UserError(train_dir, "no class folders (expected the layout train/<wnid>/*.JPEG)")
    return wnids


def folder_entries(root, wnids, known=None):
    """[(relpath, label)] of root/<wnid>/<file>, in sorted order."""
    index = {w: i for i, w in enumerate(known or wnids)}
    entries = []
    for w in wnids:
        if w not in index:
            raise UserError(os.path.join(root, w), "class folder not among the training classes")
        d = os.path.join(root, w)
        for name in _visible(os.listdir(d)):
            if os.path.isfile(os.path.join(d, name)):
                entries.append((f"{w}/{name}", index[w]))
    return entries


def read_val_labels(path, wnids):
    """[(filename, label)] from 'FILENAME LABEL' lines; LABEL is an index into
    the sorted training wnids (Caffe's val.txt) or a wnid."""
    index = {w: i for i, w in enumerate(wnids)}
    entries = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(path, f"cannot read ({getattr(e, 'strerror', None) or e})") from e
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.strip().rsplit(None, 1)
        if len(parts) != 2:
            hint = ""
            if line.strip().isdigit():
                hint = (" (one class id per line looks like the devkit ground truth; give "
                        "'FILENAME LABEL' lines as in Caffe's val.txt)")
            raise UserError(path, f"line {n}: expected 'FILENAME LABEL'{hint}")
        name, token = parts
        if token.lstrip("-").isdigit():
            label = int(token)
            if not 0 <= label < len(wnids):
                raise UserError(path, f"line {n}: label {label} outside 0..{len(wnids) - 1} "
                                f"(the {len(wnids)} training classes)")
        elif token in index:
            label = index[token]
        else:
            raise UserError(path, f"line {n}: '{token}' is neither a label number nor a "
                            "training class wnid")
        entries.append((name, label))
    if not entries:
        raise UserError(path, "no 'FILENAME LABEL' lines")
    return entries


def read_synset_names(path):
    names = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(None, 1)
                if parts:
                    names[parts[0]] = parts[1] if len(parts) > 1 else ""
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(path, f"cannot read ({getattr(e, 'strerror', None) or e})") from e
    return names


def _default_synset_words(train_dir):
    for d in (train_dir, os.path.dirname(os.path.abspath(train_dir))):
        p = os.path.join(d, "synset_words.txt")
        if os.path.isfile(p):
            return p
    return None


# --------------------------------------------------------------- checking

def check_images(tasks, jobs, progress):
    """[(status, reason)] for tasks [(path, repair_dest)], in order."""
    results = []
    step = max(1, len(tasks) // 10)

    def note(i, counts):
        if progress and (i % step == 0 or i == len(tasks)):
            progress(f"  checked {i}/{len(tasks)} images ({counts[image_repair.CONVERT]} "
                     f"converted, {counts[image_repair.UNREADABLE]} unreadable)")

    counts = {image_repair.OK: 0, image_repair.CONVERT: 0, image_repair.UNREADABLE: 0}
    if jobs <= 1 or len(tasks) < 64:
        it = map(image_repair.check_and_repair, tasks)
        pool = None
    else:
        pool = multiprocessing.get_context("fork").Pool(jobs)
        it = pool.imap(image_repair.check_and_repair, tasks, chunksize=32)
    try:
        for i, r in enumerate(it, 1):
            results.append(r)
            counts[r[0]] += 1
            note(i, counts)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return results


# ------------------------------------------------------------ Caffe tools

def run_convert_imageset(root, listfile, db, resize, encoded, progress, what):
    """convert_imageset into `db`; returns the files it reported unreadable."""
    cmd = [caffe_tool("convert_imageset"), f"-resize_height={resize}", f"-resize_width={resize}",
           "-backend=lmdb", "-shuffle=false"]
    if encoded:
        cmd += ["-encoded", "-encode_type=jpg"]
    cmd += [root + os.sep, listfile, db]
    env = dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0")
    missing, tail = [], []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, errors="replace")
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        m = re.search(r"Could not open or find file (.*)$", line)
        if m:
            missing.append(m.group(1).strip())
        elif "Processed" in line and progress:
            progress(f"  {what}: {line.split('] ', 1)[-1].strip()}")
    if proc.wait() != 0:
        raise UserError(listfile, f"convert_imageset failed (exit {proc.returncode}): "
                        + " | ".join(tail[-3:]))
    return missing


def run_compute_image_mean(db, out):
    cmd = [caffe_tool("compute_image_mean"), "-backend=lmdb", db, out]
    res = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                         env=dict(os.environ, GLOG_logtostderr="1"))
    if res.returncode != 0 or not os.path.isfile(out):
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise UserError(db, f"compute_image_mean failed (exit {res.returncode}): "
                        + " | ".join(tail))


def _present_line_ids(db):
    """Line ids convert_imageset stored (its keys are '%08d_<path>')."""
    import lmdb
    env = lmdb.open(db, readonly=True, lock=False)
    try:
        with env.begin() as txn:
            return {int(key[:8]) for key in txn.cursor().iternext(keys=True, values=False)}
    finally:
        env.close()


# ---------------------------------------------------------------- prepare

class _Split:
    def __init__(self, name, src_dir, entries):
        self.name = name
        self.src_dir = os.path.abspath(src_dir)
        self.entries = entries            # [(relpath, label)]
        self.status = []                  # [(status, reason)] per entry


def _write_lines(path, lines):
    with open(path, "w") as f:
        f.writelines(line + "\n" for line in lines)


def _move_into_place(staged, final):
    with atomic_path(final, is_dir=os.path.isdir(staged)) as tmp:
        if os.path.isdir(tmp):
            os.rmdir(tmp)
        else:
            os.remove(tmp)
        os.rename(staged, tmp)


def _check_paths(out, train, val, val_labels, synset_words):
    out_r = os.path.realpath(out)
    for d in (train, val):
        if d and (out_r == os.path.realpath(d) or out_r.startswith(os.path.realpath(d) + os.sep)):
            raise UserError(out, f"output folder is inside the input folder {d}; "
                            "choose another --out")
    for name in OUTPUTS:
        refuse_overwrite(os.path.join(out, name), val_labels, synset_words)


def prepare(train, out="data/ilsvrc12", val=None, val_labels=None, resize=256, strict=False,
            synset_words=None, encoded=False, jobs=None, seed=0, progress=print):
    """Build the ImageNet LMDBs, lists and mean in OUT; returns {output: path}."""
    t0 = time.time()
    say = progress or (lambda _m: None)
    if resize < 1:
        raise UserError(str(resize), "--resize must be a positive size (images are resized "
                        "to RESIZE x RESIZE, the mean needs one size)")
    if val_labels and not val:
        raise UserError(val_labels, "--val-labels needs --val (the folder of validation images)")
    if val and not os.path.isdir(val):
        raise UserError(val, "validation folder not found")
    if val_labels:
        require_file(val_labels, "validation label file")
    if synset_words:
        require_file(synset_words, "synset words file")
    _check_paths(out, train, val, val_labels, synset_words)

    wnids = class_folders(train)
    splits = [_Split("train", train, folder_entries(train, wnids))]
    if not splits[0].entries:
        raise UserError(train, "no image files in the class folders")
    if val:
        if val_labels:
            entries = read_val_labels(val_labels, wnids)
        else:
            sub = [d for d in _visible(os.listdir(val)) if os.path.isdir(os.path.join(val, d))]
            if not sub:
                raise UserError(val, "flat validation folder needs --val-labels FILE "
                                "('FILENAME LABEL' lines)")
            entries = folder_entries(val, sub, known=wnids)
        splits.append(_Split("val", val, entries))
    say(f"{len(wnids)} classes; " + ", ".join(f"{len(s.entries)} {s.name} files" for s in splits))

    synset_words = synset_words or _default_synset_words(train)
    names = read_synset_names(synset_words) if synset_words else {}

    jobs = jobs or min(8, os.cpu_count() or 1)
    created_out = not os.path.isdir(out)
    check_output_dir(out)
    stage = tempfile.mkdtemp(prefix=".prepare_imagenet.", suffix=".tmp", dir=out)
    ok = False
    try:
        root = os.path.join(stage, "root")
        os.makedirs(os.path.join(root, "fixed"))
        tasks = []
        for s in splits:
            os.symlink(s.src_dir, os.path.join(root, s.name))
            tasks += [(os.path.join(s.src_dir, rel), os.path.join(root, "fixed", s.name, rel))
                      for rel, _ in s.entries]
        say(f"checking {len(tasks)} images with Pillow ({jobs} processes)")
        results = check_images(tasks, jobs, say)
        k = 0
        for s in splits:
            s.status = results[k:k + len(s.entries)]
            k += len(s.entries)
        bad = [(s, rel, reason) for s in splits
               for (rel, _), (st, reason) in zip(s.entries, s.status)
               if st == image_repair.UNREADABLE]
        if bad and strict:
            s, rel, reason = bad[0]
            more = f" ({len(bad) - 1} more unreadable)" if len(bad) > 1 else ""
            raise UserError(os.path.join(s.src_dir, rel),
                            f"unreadable image: {reason}{more}; without --strict such files "
                            "are skipped and listed in skipped.txt")

        skipped = [f"{s.name}\t{rel}\t{reason}" for s, rel, reason in bad]
        for s in splits:
            kept = []   # (path under root, relpath, label)
            for (rel, label), (st, _r) in zip(s.entries, s.status):
                if st == image_repair.OK:
                    kept.append((f"{s.name}/{rel}", rel, label))
                elif st == image_repair.CONVERT:
                    kept.append((f"fixed/{s.name}/{rel}", rel, label))
            if not kept:
                raise UserError(s.src_dir, f"no readable images in the {s.name} set")
            order = np.arange(len(kept))
            if s.name == "train":
                # Caffe's Data layer reads in key order: shuffle once, reproducibly.
                order = np.random.RandomState(seed).permutation(len(kept))
            listfile = os.path.join(stage, f"convert_{s.name}.txt")
            _write_lines(listfile, [f"{kept[i][0]} {kept[i][2]}" for i in order])
            db = os.path.join(stage, f"{s.name}_lmdb")
            say(f"convert_imageset: {s.name} ({len(kept)} images, {resize}x{resize})")
            missing = run_convert_imageset(root, listfile, db, resize, encoded, say,
                                           f"{s.name}_lmdb")
            present = _present_line_ids(db)
            lost = [j for j in range(len(kept)) if j not in present]
            if lost:
                rels = [kept[order[j]][1] for j in lost]
                if strict:
                    raise UserError(os.path.join(s.src_dir, rels[0]),
                                    f"convert_imageset could not read it ({len(rels)} such files)")
                skipped += [f"{s.name}\t{r}\tconvert_imageset could not read it" for r in rels]
                lost_rel = set(rels)
                kept = [k_ for k_ in kept if k_[1] not in lost_rel]
            n = lmdb_count(db)
            if n != len(kept):
                raise UserError(db, f"LMDB holds {n} images, expected {len(kept)} "
                                f"(convert_imageset reported {len(missing)} unreadable)")
            _write_lines(os.path.join(stage, f"{s.name}.txt"),
                         [f"{rel} {lab}" for _p, rel, lab in kept])
        say("compute_image_mean: train_lmdb")
        run_compute_image_mean(os.path.join(stage, "train_lmdb"),
                               os.path.join(stage, "mean.binaryproto"))
        _write_lines(os.path.join(stage, "synset_words.txt"),
                     [f"{w} {names[w]}".rstrip() if names.get(w) else w for w in wnids])
        _write_lines(os.path.join(stage, "skipped.txt"), skipped)
        done = {}
        for name in OUTPUTS:
            staged = os.path.join(stage, name)
            if os.path.exists(staged):
                done[name] = os.path.join(os.path.abspath(out), name)
                _move_into_place(staged, done[name])
        ok = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if not ok and created_out and not os.listdir(out):
            os.rmdir(out)
    if not val and os.path.exists(os.path.join(out, "val_lmdb")):
        say(f"note: {os.path.join(out, 'val_lmdb')} is from an earlier run (no --val given)")
    say(f"{len(skipped)} files skipped (listed in {os.path.join(out, 'skipped.txt')})")
    say(f"done in {time.time() - t0:.1f} s")
    return done


def command(args):
    """What ``tools/prepare_imagenet.py`` does with its parsed command line."""

    def progress(msg):
        print(msg, flush=True)

    if args.sample:
        if args.train or args.val or args.val_labels:
            raise UserError(args.sample, "--sample replaces --train, --val and --val-labels")
        with tempfile.TemporaryDirectory(prefix="imagenet_sample_") as tmp:
            train = sample_train_folder(args.sample, tmp)
            banner = ("SMOKE RUN: " + args.sample + " serves as BOTH the training and the "
                      "validation set; accuracies measured on it mean nothing")
            progress("*" * len(banner) + "\n" + banner + "\n" + "*" * len(banner))
            prepare(train, args.out, train, None, args.resize, args.strict, args.synset_words,
                    args.encoded, args.jobs, args.seed, progress)
        progress(banner)
        return 0
    if not args.train:
        raise UserError("--train", "give the training folder (or --sample for a smoke run)")
    prepare(args.train, args.out, args.val, args.val_labels, args.resize, args.strict,
            args.synset_words, args.encoded, args.jobs, args.seed, progress)
    return 0


def sample_train_folder(sample, tmp):
    """The train/ folder of a sample given as a tar archive (unpacked into
    `tmp`) or a folder holding train/ (directly or one level down)."""
    root = sample
    if os.path.isfile(sample):
        try:
            with tarfile.open(sample) as tar:
                members = tar.getmembers()
                for m in members:  # plain files and folders inside tmp only
                    if not (m.isfile() or m.isdir()) or m.name.startswith("/") or \
                            ".." in m.name.split("/"):
                        raise UserError(sample, f"unsafe archive member {m.name!r}")
                tar.extractall(tmp, members)
        except (tarfile.TarError, OSError) as e:
            reason = str(e).splitlines()[0].rstrip(":")
            raise UserError(sample, f"not a readable tar archive ({reason})") from e
        root = tmp
    elif not os.path.isdir(sample):
        raise UserError(sample, "sample not found (a .tar archive or a folder)")
    for candidate in [root] + sorted(os.path.join(root, d) for d in os.listdir(root)):
        if os.path.isdir(os.path.join(candidate, "train")):
            return os.path.join(candidate, "train")
    raise UserError(sample, "no train/ folder in the sample")
