"""Writes the tiny UCF-101 and MSR-VTT fixtures in their official layouts (committed; re-run to regenerate).

UCF-101: ``UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` (MPEG-4 Part 2 in AVI, like the official Xvid files, 40 x 30
at 25 fps, 20 frames) and ``ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt`` with the official line formats,
for three classes with their official indices.  HandstandPushups keeps the official quirk: its files are named
``v_HandStandPushups_...``; one list line spells it ``HandstandPushups`` (resolved case-insensitively).
MSR-VTT: ``test_videodatainfo.json`` (official keys; three test videos with three captions each, plus one train
video that the test split must drop) and ``TestVideo/videoN.mp4`` (H.264 yuv420p, 48 x 32, 20 frames).
Pixels are smooth seeded patterns, so videos differ from each other and survive lossy coding.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from omnieval.media import Video, write_video

HERE = Path(__file__).resolve().parent


def pattern(seed: int, t: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((t, h, w, 3), np.uint8)
    for c in range(3):
        fy, fx, speed, phase = rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.3), rng.uniform(0.1, 0.6), rng.uniform(0, 6)
        for i in range(t):
            out[i, :, :, c] = (127.5 + 120 * np.sin(fy * yy + fx * xx + speed * i + phase)).astype(np.uint8)
    return out


UCF = [  # (class index, folder, file-name spelling, groups in the train list, group in the test list)
    (1, "ApplyEyeMakeup", "ApplyEyeMakeup", (8, 9), 1),
    (37, "HandstandPushups", "HandStandPushups", (8, 9), 1),
    (101, "YoYo", "YoYo", (8, 10), 2),
]


def ucf101(root: Path) -> None:
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    train, test, seed = [], [], 0
    for index, folder, spelled, groups, test_group in UCF:
        (root / "UCF-101" / folder).mkdir(parents=True, exist_ok=True)
        for g in (*groups, test_group):
            name = f"v_{spelled}_g{g:02d}_c01.avi"
            seed += 1
            write_video(Video(pattern(seed, 20, 30, 40), fps=25), root / "UCF-101" / folder / name, codec="mpeg4")
            listed = name.replace("HandStand", "Handstand") if g == groups[1] else name  # the case quirk, once
            (train.append(f"{folder}/{listed} {index}") if g in groups else test.append(f"{folder}/{listed}"))
    (lists / "classInd.txt").write_text("".join(f"{i} {f}\r\n" for i, f, *_ in UCF))
    (lists / "trainlist01.txt").write_text("".join(line + "\r\n" for line in train))
    (lists / "testlist01.txt").write_text("".join(line + "\r\n" for line in test))
    docs = [{"id": str(i), "class_name": f, "prompt": f, "prompt_lower": f.lower(), "n_2048": 2, "n_10000": 3}
            for i, f, *_ in UCF]
    (root / "classes.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))


def msrvtt(root: Path) -> None:
    (root / "TestVideo").mkdir(parents=True, exist_ok=True)
    videos, sentences, sen = [], [], 130000
    for k, vid in enumerate(["video6999", "video7010", "video7011", "video7012"]):
        split = "validate" if vid == "video6999" else "test"
        videos.append({"category": k, "url": f"https://www.youtube.com/watch?v=fixture{k}", "video_id": vid,
                       "start time": 1.0, "end time": 11.0, "split": split, "id": 6999 + k})
        for j, text in enumerate(["a man is cooking in a kitchen", "a person plays a guitar on a stage",
                                  "a dog runs across a green field"]):
            sentences.append({"caption": f"{text} ({vid} caption {j})", "video_id": vid, "sen_id": sen})
            sen += 1
        if split == "test":
            write_video(Video(pattern(100 + k, 20, 32, 48), fps=30), root / "TestVideo" / f"{vid}.mp4", codec="libx264")
    info = {"info": {"contributor": "fixture", "version": "1.0"}, "videos": videos, "sentences": sentences}
    (root / "test_videodatainfo.json").write_text(json.dumps(info, indent=1))


if __name__ == "__main__":
    base = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    ucf101(base / "ucf101_fixture")
    msrvtt(base / "msrvtt_fixture")
