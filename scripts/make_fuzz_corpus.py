#!/usr/bin/env python3
"""Write the committed fuzz corpora: tests/fuzz/corpus/<harness>/.

seed_*  small valid inputs, so the fuzzer starts inside each format;
reg_*   the bad inputs of issue #15 (each once crashed, hung, blew up memory,
        or was silently accepted): every run of scripts/fuzz.sh replays them.
Standard library only. Run from anywhere: python3 scripts/make_fuzz_corpus.py
"""
import gzip
import io
import os
import struct
import zipfile
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def put(harness, name, data):
    d = os.path.join(OUT, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def idx(magic, dims, data=b""):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)


def gz(b):
    return gzip.compress(b, compresslevel=9, mtime=0)


def npy(descr, shape, data, header=None):
    if header is None:
        dims = ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "")
        header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, dims)
    pad = (64 - (10 + len(header) + 1) % 64) % 64
    h = (header + " " * pad + "\n").encode()
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + data


def npz(members, compress=False):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            z.writestr(info, data)
    return buf.getvalue()


def local_header(name, data, method=0, csize=None, usize=None):
    crc = zlib.crc32(data)
    csize = len(data) if csize is None else csize
    usize = len(data) if usize is None else usize
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, csize, usize, len(name), 0) + name


def central(name, crc, csize, usize, offset, method=0):
    return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, csize, usize,
                       len(name), 0, 0, 0, 0, 0, offset) + name


def eocd(n, cd_size, cd_offset):
    return struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, cd_size, cd_offset, 0)


def floats(values):
    return b"".join(struct.pack("<f", v) for v in values)


# ------------------------------------------------------------------ IDX raw
labels = idx(0x801, [3], [0, 1, 2])
images = idx(0x803, [3, 2, 2], range(12))
put("idx_raw", "seed_labels_3", labels)
put("idx_raw", "seed_images_3x2x2", images)
put("idx_raw", "seed_4d_1x1x2x2", idx(0x804, [1, 1, 2, 2], [9, 8, 7, 6]))
put("idx_raw", "reg_labels_9_bytes_claim_4294967295_items", idx(0x801, [0xFFFFFFFF], [7]))
put("idx_raw", "reg_images_16_bytes_claim_60000x28x28", idx(0x803, [60000, 28, 28]))
put("idx_raw", "reg_images_claim_65535x65535x65535", idx(0x803, [65535, 65535, 65535], [1, 2]))
put("idx_raw", "reg_dims_product_over_4GiB", idx(0x803, [0x10000, 0x10000, 2]))
put("idx_raw", "reg_data_after_last_element", labels + b"extra")
put("idx_raw", "reg_header_cut", images[:10])

# ----------------------------------------------------------------- IDX gzip
# byte 0 even: the rest is IDX content the harness compresses; odd: a gzip file.
put("idx_gzip", "seed_compress_images", b"\x00" + images)
put("idx_gzip", "seed_compress_labels", b"\x00" + labels)
put("idx_gzip", "seed_file_images", b"\x01" + gz(images))
put("idx_gzip", "seed_file_two_members", b"\x01" + gz(images[:9]) + gz(images[9:]))
put("idx_gzip", "reg_compress_claim_4294967295_items", b"\x00" + idx(0x803, [0xFFFFFFFF, 1, 1], [1, 2, 3]))
put("idx_gzip", "reg_file_claim_60000x28x28", b"\x01" + gz(idx(0x803, [60000, 28, 28], [0] * 100)))
put("idx_gzip", "reg_file_stream_cut", b"\x01" + gz(images)[:-12])
put("idx_gzip", "reg_file_trailer_missing", b"\x01" + gz(images)[:-8])
put("idx_gzip", "reg_file_bad_crc", b"\x01" + gz(images)[:-8] + b"\0\0\0\0" + gz(images)[-4:])
# a small file inflating to 4 MiB of zeros behind a header claiming 4 GiB
put("idx_gzip", "reg_file_zeros_behind_huge_claim", b"\x01" + gz(idx(0x803, [0xFFFF, 0xFFFF, 1]) + bytes(4 << 20)))

# ---------------------------------------------------------------------- CSV
with gzip.open(os.path.join(ROOT, "data", "digits.csv.gz"), "rb") as f:
    rows = f.read().split(b"\n")
put("csv", "seed_three_rows", b"\n".join(rows[:3]) + b"\n")
put("csv", "seed_crlf_blank_lines", b"\r\n".join(rows[:2]) + b"\r\n\r\n")
row = b"1," * 63
put("csv", "reg_nul_inside_field", b"5\0," + row[2:] + b"1,3\n")
put("csv", "reg_plus_and_space", b"+5, 5," + row[4:] + b"3\n")
put("csv", "reg_value_overflows_long", b"99999999999999999999," + row[2:] + b"1,3\n")
put("csv", "reg_negative_pixel", b"-1," + row[2:] + b"1,3\n")
put("csv", "reg_label_10", row + b"1,10\n")
put("csv", "reg_thousands_of_fields", b"1," * 20000 + b"1\n")
put("csv", "reg_binary_garbage", bytes(range(256)) * 4)
put("csv", "reg_empty", b"")
put("csv", "reg_gzip_of_rows", gz(b"\n".join(rows[:2]) + b"\n"))

# ---------------------------------------------------------------------- npz
a23 = npy("<f4", (2, 3), floats([1, 2, 3, 4, 5, 6]))
put("npz", "seed_stored_f4", npz([("w.npy", a23)]))
put("npz", "seed_deflate_f8_two", npz([("a.npy", npy("<f8", (2,), struct.pack("<2d", 1.5, -2))),
                                       ("b.npy", npy("<f8", (), struct.pack("<d", 3)))], compress=True))
for fixture in ("numpy_mlp_f32.npz", "numpy_mlp_f64_compressed.npz"):
    with open(os.path.join(ROOT, "tests", "fixtures", "checkpoint", fixture), "rb") as f:
        put("npz", "seed_" + fixture.replace(".npz", ""), f.read())
# shape overflow: (2^61+1) * 8 * 4 bytes wraps to 32
put("npz", "reg_shape_product_wraps_to_32", npz([("w.npy", npy("<f4", (2**61 + 1, 8), bytes(32)))]))
put("npz", "reg_shape_zero_times_2pow62", npz([("w.npy", npy("<f4", (0, 2**62), b""))]))
put("npz", "reg_shape_negative",
    npz([("w.npy", npy("<f4", None, bytes(4), "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }"))]))
put("npz", "reg_shape_33_dims", npz([("w.npy", npy("<f4", [1] * 33, bytes(4)))]))
# zip bomb: one deflated block of 1 MiB of zeros, 64 directory entries pointing at it
block = zlib.compressobj(9, zlib.DEFLATED, -15)
payload = npy("<f4", (1 << 18,), bytes(1 << 20))
comp = block.compress(payload) + block.flush()
lh = local_header(b"x0.npy", payload, 8, len(comp), len(payload))
body = lh + comp
cd = b"".join(central(b"x%d.npy" % k, zlib.crc32(payload), len(comp), len(payload), 0, 8) for k in range(64))
put("npz", "reg_bomb_64_entries_one_block", body + cd + eocd(64, len(cd), len(body)))
# overlapping members: b.npy's local header and data sit inside a.npy's stored data
inner = npy("<f4", (3,), floats([1, 2, 3]))
b_local = local_header(b"b.npy", inner) + inner
a_local = local_header(b"a.npy", b_local)
body = a_local + b_local
cd = central(b"a.npy", zlib.crc32(b_local), len(b_local), len(b_local), 0) + \
     central(b"b.npy", zlib.crc32(inner), len(inner), len(inner), len(a_local))
put("npz", "reg_members_overlap", body + cd + eocd(2, len(cd), len(body)))
# a count the directory cannot hold, and a directory offset past the end
good = npz([("w.npy", a23)])
put("npz", "reg_entry_count_65534", good[:-22] + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 65534, 65534,
                                                                  *struct.unpack("<II", good[-10:-2]), 0))
put("npz", "reg_cd_offset_past_end", good[:-6] + struct.pack("<I", 0xFFFFFFF0) + good[-2:])
# a deflate member claiming more than 1032:1
put("npz", "reg_deflate_claims_4GiB",
    local_header(b"w.npy", b"", 8, 2, 0xFFFFFFF0) + b"\x03\x00" +
    central(b"w.npy", 0, 2, 0xFFFFFFF0, 0, 8) + eocd(1, 46 + 5, 30 + 5 + 2))

# --------------------------------------------------------------- checkpoint
# The trainer's metadata file: settings as "key=value" lines stored as float32
# character codes, plus the normalisation statistics.
settings = {
    "model": "mlp", "hidden": "100", "loss": "ce", "layers": "16", "activation": "relu", "optimizer": "adam",
    "lr": "0.002", "momentum": "0.90000000000000002", "weight_decay": "0", "schedule": "cosine", "warmup": "0",
    "step_size": "3", "gamma": "0.5", "clip": "0", "epochs": "2", "batch_size": "32", "seed": "1",
    "data": "digits", "val_fraction": "0.083333333333333329", "normalization": "feature", "name": "fuzz",
    "epochs_done": "1",
}


def meta(cfg, codes=None, mean=(0.0,) * 4, scale=(1.0,) * 4):
    text = "".join("%s=%s\n" % kv for kv in sorted(cfg.items()))
    codes = [float(ord(c)) for c in text] if codes is None else codes
    return npz([("config.npy", npy("<f4", (len(codes),), floats(codes))),
                ("norm_mean.npy", npy("<f4", (len(mean),), floats(mean))),
                ("norm_scale.npy", npy("<f4", (len(scale),), floats(scale)))])


put("checkpoint", "seed_meta_digits_mlp", meta(settings))
put("checkpoint", "reg_step_size_0", meta(dict(settings, step_size="0")))
put("checkpoint", "reg_epochs_done_1e30", meta(dict(settings, epochs_done="1e30")))
put("checkpoint", "reg_hidden_not_a_number", meta(dict(settings, hidden="abc")))
put("checkpoint", "reg_warmup_minus_1", meta(dict(settings, warmup="-1")))
put("checkpoint", "reg_gamma_nan", meta(dict(settings, gamma="nan")))
put("checkpoint", "reg_mean_scale_sizes_differ", meta(settings, mean=(0.0,) * 3))
put("checkpoint", "reg_config_codes_out_of_range",
    meta(settings, codes=[float(ord(c)) for c in "model=mlp\n"] + [1e30, -5.0, 300.0, float("nan")]))
