#!/usr/bin/env python3
"""Helpers of scripts/bench-peers.sh: check a download against the simulator's manifest, pick
the same files in two mounts, read files, and render the results as markdown.

  bench_peers.py verify MANIFEST DIR [--exclude NAME ...]   -> one JSON line
  bench_peers.py pick OURS_ROOT RCLONE_ROOT N OUT_DIR [--exclude NAME ...]
                                                 -> OUT_DIR/{heads,videos}.{ours,rclone}
  bench_peers.py read ROOT LIST BYTES        -> "N files, B bytes, E errors" (paths under ROOT)
  bench_peers.py amend RESULTS.tsv FIELD VALUE    set a field of the last row (note: appended)
  bench_peers.py check VERIFY_JSON LABEL          the verify line as a markdown item
  bench_peers.py library MANIFEST                 one line: what the primary library holds
  bench_peers.py report RESULTS.tsv FACTS.json OUT.md
"""

import hashlib
import json
import os
import sys

# The versions a default download takes (icloudpd: --size original, --live-photo-size original).
DEFAULT_VERSIONS = {"original", "live_original"}
# Files a download left unfinished (icloudpd, rclone, icloudpd-rs, rsync's are dot files).
PARTIAL_SUFFIXES = (".part", ".partial")
VIDEO_EXTS = (".mov", ".mp4", ".m4v")


def walk(root, exclude=()):
    """Regular files under root (views excluded at the top level), as paths."""
    for d, dirs, names in os.walk(root):
        if d == root:
            dirs[:] = [x for x in dirs if x not in exclude]
        for n in names:
            yield os.path.join(d, n)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def verify(manifest, root, exclude):
    """Compare a folder with the versions of the primary library a default download takes."""
    all_hashes = set()
    expected = {}
    for line in open(manifest):
        e = json.loads(line)
        all_hashes.add(e["sha256"])
        if (e["zone"] == "PrimarySync" and e["version"] in DEFAULT_VERSIONS
                and not e["is_deleted"] and not e["is_hidden"]):
            expected[e["sha256"]] = e["size"]
    files = nbytes = corrupt = other = partial = 0
    found = set()
    for p in walk(root, exclude):
        if p.endswith(PARTIAL_SUFFIXES):
            partial += 1
            continue
        files += 1
        nbytes += os.path.getsize(p)
        h = sha256_file(p)
        if h in expected:
            found.add(h)
        elif h in all_hashes:
            other += 1
        else:
            corrupt += 1
    out = {
        "files": files, "bytes": nbytes, "expected": len(expected),
        "expected_bytes": sum(expected.values()), "matched": len(found),
        "missing": len(expected) - len(found), "other_versions": other,
        "corrupt": corrupt, "partial": partial,
    }
    print(json.dumps(out))


def pick(ours_root, rclone_root, n, out_dir, exclude):
    """The same photos and videos in both mounts, by file name (names unique in both)."""
    def by_name(root, exclude=()):
        seen, dup = {}, set()
        for p in walk(root, exclude):
            b = os.path.basename(p)
            if b in seen:
                dup.add(b)
            seen[b] = p
        for b in dup:
            del seen[b]
        return seen
    ours = by_name(ours_root, exclude)
    theirs = by_name(rclone_root)
    common = sorted(set(ours) & set(theirs))
    videos = sorted((b for b in common if b.lower().endswith(VIDEO_EXTS)),
                    key=lambda b: (-os.path.getsize(ours[b]), b))[:3]
    # The heads: spread over the rest of the (sorted) set, so that no read-ahead of one
    # workload serves the other.
    rest = [b for b in common if b not in videos]
    step = max(1, len(rest) // max(1, n))
    heads = rest[::step][:n]
    for kind, names in (("heads", heads), ("videos", videos)):
        for tool, paths in (("ours", ours), ("rclone", theirs)):
            with open(os.path.join(out_dir, f"{kind}.{tool}"), "w") as f:
                root = ours_root if tool == "ours" else rclone_root
                f.writelines(os.path.relpath(paths[b], root) + "\n" for b in names)
    sizes = sum(os.path.getsize(ours[b]) for b in videos)
    with open(os.path.join(out_dir, "videos.bytes"), "w") as f:
        f.write(f"{sizes}\n")
    print(f"{len(common)} files in both downloads; {len(heads)} picked for heads, "
          f"{len(videos)} videos of {sizes} bytes")


def read(root, list_file, nbytes):
    files = total = errors = 0
    for line in open(list_file):
        p = os.path.join(root, line.rstrip("\n"))
        try:
            with open(p, "rb", buffering=0) as f:
                if nbytes > 0:
                    total += len(f.read(nbytes))
                else:
                    while True:
                        b = f.read(1 << 20)
                        if not b:
                            break
                        total += len(b)
            files += 1
        except OSError as e:
            errors += 1
            print(f"read error: {p}: {e}", file=sys.stderr)
    print(f"{files} files, {total} bytes, {errors} errors")
    sys.exit(1 if errors else 0)


# Wall times below this are within the timer's noise: no ratio.
TOO_SHORT = 0.05
FIELDS = ("tool", "work", "wall", "rss", "api", "cdn_req", "cdn_bytes", "status", "note")


def amend(results, field, value):
    lines = open(results).read().splitlines()
    f = lines[-1].split("\t")
    i = FIELDS.index(field)
    if field == "note" and f[i]:
        value = f"{value}; {f[i]}"
    f[i] = value
    lines[-1] = "\t".join(f)
    open(results, "w").write("\n".join(lines) + "\n")


def check(verify_json, label):
    v = json.loads(verify_json)
    ok = v["missing"] == 0 and v["corrupt"] == 0 and v["partial"] == 0
    print(f"- {label}: {v['files']} files, {v['bytes']} bytes; {v['matched']} of the "
          f"{v['expected']} expected versions ({v['expected_bytes']} bytes) byte-identical, "
          f"{v['missing']} missing, {v['other_versions']} other versions, {v['corrupt']} not in "
          f"the manifest, {v['partial']} partial: {'OK' if ok else 'MISMATCH'}")


def library(manifest):
    assets = nbytes = live = videos = 0
    for line in open(manifest):
        e = json.loads(line)
        if e["zone"] != "PrimarySync" or e["is_deleted"] or e["is_hidden"]:
            continue
        if e["version"] == "original":
            assets += 1
            nbytes += e["size"]
            videos += e["item_type"] in ("com.apple.quicktime-movie", "public.mpeg-4")
        elif e["version"] == "live_original":
            live += 1
            nbytes += e["size"]
    print(f"{assets} visible assets ({videos} videos, {live} live photos), "
          f"{nbytes / 2**20:.0f} MiB of originals")


def fmt_num(x):
    try:
        v = float(x)
    except ValueError:
        return x
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def fmt_bytes(x):
    try:
        v = int(x)
    except ValueError:
        return x
    if v >= 1 << 20:
        return f"{v / (1 << 20):.1f} MiB"
    if v >= 1 << 10:
        return f"{v / (1 << 10):.0f} KiB"
    return str(v)


def report(results, facts_file, out):
    rows = [dict(zip(FIELDS, line.rstrip("\n").split("\t")))
            for line in open(results) if line.strip()]
    cell = lambda text: text.replace("|", "\\|")  # a pipe would end the table cell
    # Group by workload (in the order first run), tools in a fixed order; odd rows last.
    order = {}
    for r in rows:
        order.setdefault(r["work"], len(order))
    tools = {"icloudpd": 0, "rclone": 1, "icloudpd-rs": 2}

    def key(r):
        head = r["work"].split(" ", 1)[0]
        num = float(head) if head.replace(".", "", 1).isdigit() else 99.0
        return (num, order[r["work"]], tools.get(r["tool"], 3))
    rows.sort(key=key)
    facts = json.load(open(facts_file))
    L = [f"# Side by side: icloudpd, rclone and icloudpd-rs ({facts['date']})", ""]
    L += [f"Library: {facts['assets']} simulated assets (seed {facts['seed']}, size scale "
          f"{facts['size_scale']}: {facts['library']}), {facts['latency']} ms added to every API "
          f"answer and CDN response start, two-factor account. Every tool runs unmodified and "
          f"reaches the simulator under Apple's host names over TLS (scripts/bench-peers.sh"
          f"{' --quick' if facts['quick'] else ''}).", ""]
    L += ["Machine: " + facts["machine"], "", "Tools: " + facts["tools"], ""]
    L += ["| tool | workload | wall s | peak RSS MiB | API calls | CDN GETs | CDN bytes | notes |",
          "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        note = r["note"]
        if r["status"] not in ("0", ""):
            note = f"exit {r['status']}" + (f"; {note}" if note else "")
        L.append(f"| {r['tool']} | {cell(r['work'])} | {fmt_num(r['wall'])} | {r['rss']} "
                 f"| {r['api']} | {r['cdn_req']} | {fmt_bytes(r['cdn_bytes'])} | {cell(note)} |")
    L += ["", "Ratios, icloudpd-rs against the best peer of each workload (below 1: icloudpd-rs "
          "is faster or lighter):", "",
          "| workload | best peer | wall ratio | peak RSS ratio | API calls (ours / peer) |",
          "|---|---|---:|---:|---|"]
    works = []
    for r in rows:
        if r["work"] not in works:
            works.append(r["work"])

    def val(r, k):
        try:
            return float(r[k])
        except ValueError:
            return None
    for w in works:
        ours = [r for r in rows if r["work"] == w and r["tool"] == "icloudpd-rs"
                and val(r, "wall") is not None]
        peers = [r for r in rows if r["work"] == w and r["tool"] != "icloudpd-rs"
                 and val(r, "wall") is not None]
        if not ours or not peers:
            continue
        o = ours[0]
        best = min(peers, key=lambda r: val(r, "wall"))
        if max(val(o, "wall"), val(best, "wall")) < TOO_SHORT:
            wall = f"~ (both under {TOO_SHORT} s)"
        else:
            ratio = val(o, "wall") / max(val(best, "wall"), 0.005)
            wall = f"{ratio:.3f}" if ratio < 0.01 else f"{ratio:.2f}"
        rss = "" if val(o, "rss") is None or not val(best, "rss") else \
            f"{val(o, 'rss') / val(best, 'rss'):.2f}"
        flag = lambda r: "" if r["status"] in ("0", "") else f" (exit {r['status']})"
        L.append(f"| {cell(w)} | {best['tool']}{flag(best)} | {wall}{flag(o)} | {rss} "
                 f"| {o['api']} / {best['api']} |")
    L += [""] + facts["notes"] + [""]
    text = "\n".join(L)
    open(out, "w").write(text)
    print(text)


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "verify":
        exclude = [argv[i + 1] for i in range(4, len(argv) - 1) if argv[i] == "--exclude"]
        verify(argv[2], argv[3], exclude)
    elif cmd == "pick":
        exclude = [argv[i + 1] for i in range(6, len(argv) - 1) if argv[i] == "--exclude"]
        pick(argv[2], argv[3], int(argv[4]), argv[5], exclude)
    elif cmd == "read":
        read(argv[2], argv[3], int(argv[4]))
    elif cmd == "amend":
        amend(argv[2], argv[3], argv[4])
    elif cmd == "check":
        check(argv[2], argv[3])
    elif cmd == "library":
        library(argv[2])
    elif cmd == "report":
        report(argv[2], argv[3], argv[4])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv)
