"""Peak resident memory of reading a small but long video (issue 14 §7.6, issue 10 §3).

A 600-frame 1280x720 clip of a nearly static scene compresses to tens of kilobytes, yet decodes to
600 * 1280 * 720 * 3 bytes = 1.66 GB of RGB frames.  Each case runs in a fresh Python process and reports that
process that prints its own peak resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, KiB on Linux):

* ``import``: the interpreter with omnieval.media, numpy and av imported (the floor);
* ``full``: ``read_video(path).frames`` (every frame decoded);
* ``sample8``: 8 uniformly spaced frames through ``Video.sample`` (seeking; only those frames are kept);
* ``predictions``: ``omnieval run --model predictions --predict_only`` on a one-item t2v task whose output is
  the clip (the predictions model never looks at the frames; the artifact is stored as the file's bytes).

    python bench/bench_video_memory.py [--frames 600 --width 1280 --height 720]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CASES = {
    "import": "import numpy, av, omnieval.media",
    "full": "from omnieval.media import read_video; v = read_video(PATH); print(v.frames.shape)",
    "sample8": textwrap.dedent("""
        from omnieval.media import read_video, sample_frame_indices
        v = read_video(PATH)
        print(v.sample(sample_frame_indices(len(v), 8, 'uniform')).shape)"""),
}


def make_clip(path: Path, frames: int, width: int, height: int) -> None:
    import av
    import numpy as np

    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 255 // width), (y * 255 // height), np.full_like(x, 128)], -1).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "35", "preset": "veryfast"}
        for t in range(frames):
            frame = base.copy()
            frame[(t * 2) % (height - 8):][:8, 100:108] = 255  # a small moving square
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())




def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    args = ap.parse_args()
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = tmp / "pred" / "clip.mp4"
        clip.parent.mkdir()
        make_clip(clip, args.frames, args.width, args.height)
        decoded = args.frames * args.width * args.height * 3
        print(f"clip: {clip.stat().st_size / 1024:.0f} KB on disk, {args.frames} frames {args.width}x{args.height}, "
              f"{decoded / 1e9:.2f} GB decoded")
        (clip.parent / "manifest.jsonl").write_text(json.dumps({"task": "mem_t2v", "doc_id": "a", "file": "clip.mp4"}) + "\n")
        tasks = tmp / "tasks"
        tasks.mkdir()
        (tasks / "p.jsonl").write_text('{"id": "a", "prompt": "a clip"}\n')
        (tasks / "t.yaml").write_text("task: mem_t2v\ncapability: t2v\ndataset: {path: p.jsonl}\n")
        # each case runs in a fresh child that reports its own peak (ru_maxrss of RUSAGE_SELF)
        results = {}
        for name, code in CASES.items():
            results[name] = _self_peak(f"PATH = {str(clip)!r}\n{code}\n", env)
        cli = (f"rc = main(['run', '--model', 'predictions', '--model_args', 'path={clip.parent}', '--tasks', 'mem_t2v', "
               f"'--predict_only', '--include_path', '{tasks}', '--output_path', '{tmp / 'out'}'])\n")
        results["predictions"] = _self_peak("from omnieval.cli import main\n" + cli + "assert rc == 0, rc\n", env)
        for name, mb in results.items():
            print(f"{name:>12}: " + (f"peak RSS {mb[0]:6.0f} MiB, {mb[1]:5.1f} s" if isinstance(mb, tuple) else mb))


def _self_peak(code: str, env: dict) -> tuple[float, float] | str:
    """Run ``code`` in a fresh python; its own peak RSS (``ru_maxrss``, KiB on Linux) in MiB, and its wall time."""
    report = "import resource, sys\nprint('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code + report], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:100]
    line = [x for x in proc.stderr.splitlines() if x.startswith("PEAK ")][-1]
    return int(line.split()[1]) / 1024, wall


if __name__ == "__main__":
    main()
