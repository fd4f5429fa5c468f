"""Write the bundled fixtures of the judged video-QA tasks (``tasks/understanding/fixtures/<task>/``).

Items we wrote ourselves, in the official release layouts read by :mod:`omnieval.loaders.video_qa`: the
``GPT_Zero_Shot_QA`` folders (``test_q.json`` + ``test_a.json`` joined by position, videos in the benchmark's
subfolder) and the Video-ChatGPT ``Benchmarking_QA`` / ``Test_Videos`` folder.  Videos are 8-frame 32x32 clips of
a coloured square moving left or right (libx264 yuv420p in .mp4/.mkv, MPEG-4 Part 2 in .avi), so every container the
loaders look for is exercised.  Re-run with ``python tests/make_video_qa_fixtures.py`` (the same frames; .mkv bytes
differ between runs because Matroska stores a random segment UID).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent / "tasks" / "understanding" / "fixtures"
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40)}


def clip(colour: str, direction: str) -> np.ndarray:
    frames = np.full((8, 32, 32, 3), 16, np.uint8)
    for t in range(8):
        x = 4 + 2 * t if direction == "right" else 20 - 2 * t
        frames[t, 12:20, x : x + 8] = COLOURS[colour]
    return frames


def write(path: Path, colour: str, direction: str) -> None:
    from omnieval.media import Video, write_video

    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(Video(clip(colour, direction), fps=8.0), path, codec="mpeg4" if path.suffix == ".avi" else "libx264")


def dump(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def zero_shot(folder: str, videos: str, items: list[tuple[str, str, str, str, object]], files: dict[str, tuple[str, str]]) -> None:
    """``items``: (video_name, question_id, question, answer, type)."""
    base = ROOT / folder
    dump(base / "test_q.json", [{"video_name": v, "question_id": q, "question": text} for v, q, text, _, _ in items])
    dump(base / "test_a.json", [{"answer": a, "type": t, "question_id": q} for _, q, _, a, t in items])
    for name, (colour, direction) in files.items():
        write(base / videos / name, colour, direction)


def main() -> None:
    for name in ("activitynetqa", "msvd_qa", "msrvtt_qa", "tgif_qa", "videochatgpt"):
        shutil.rmtree(ROOT / name, ignore_errors=True)  # (the folder holds other tasks' fixtures too)
    zero_shot("activitynetqa", "all_test", [
        ("fixred", "v_fixred_0", "what color is the square", "red", 4),
        ("fixred", "v_fixred_1", "is the square moving", "yes", 3),
        ("fixgreen", "v_fixgreen_0", "which way does the square move", "left", 0),
        ("fixgreen", "v_fixgreen_1", "what is the square doing", "moving left", 8),
    ], {"v_fixred.mp4": ("red", "right"), "v_fixgreen.mkv": ("green", "left")})
    zero_shot("msvd_qa", "videos", [
        ("msvd_blue_clip", "0", "what is moving?", "square", "what"),
        ("msvd_blue_clip", "1", "what color is the square?", "blue", "what"),
        ("msvd_yellow_clip", "2", "who moves to the left?", "square", "who"),
    ], {"msvd_blue_clip.avi": ("blue", "right"), "msvd_yellow_clip.mp4": ("yellow", "left")})
    zero_shot("msrvtt_qa", "videos/all", [
        ("video7010", "0", "what is shown in the video?", "square", "what"),
        ("video7011", "1", "what color is the object?", "green", "what"),
        ("video7011", "2", "where does the square go?", "left", "where"),
    ], {"video7010.mp4": ("red", "right"), "video7011.mp4": ("green", "left")})
    zero_shot("tgif_qa", "mp4", [
        ("tumblr_fixture_a", "v_tumblr_fixture_a_0", "what does the square do?", "move", 2),
        ("tumblr_fixture_b", "v_tumblr_fixture_b_0", "what color is the square?", "yellow", 3),
        ("tumblr_fixture_b", "v_tumblr_fixture_b_1", "how many squares are there?", "one", 1),
    ], {"tumblr_fixture_a.mp4": ("blue", "right"), "tumblr_fixture_b.mp4": ("yellow", "left")})

    vcg = ROOT / "videochatgpt"
    dump(vcg / "Benchmarking_QA" / "generic_qa.json", [
        {"Q": "What happens in the video?", "A": "A red square moves from left to right across a dark background.", "video_name": "vcg_red"},
        {"Q": "Describe the object in the video.", "A": "It is a small red square.", "video_name": "vcg_red"},
        {"Q": "What is the setting of the video?", "A": "A plain dark background with a green square.", "video_name": "vcg_green"},
    ])
    dump(vcg / "Benchmarking_QA" / "temporal_qa.json", [
        {"Q": "Where is the square at the end of the video?", "A": "On the right side.", "video_name": "vcg_red"},
        {"Q": "In which direction does the square move over time?", "A": "From right to left.", "video_name": "vcg_green"},
    ])
    dump(vcg / "Benchmarking_QA" / "consistency_qa.json", [
        {"Q1": "What color is the square?", "Q2": "Which color does the moving shape have?", "A": "Red.", "video_name": "vcg_red"},
        {"Q1": "Which way does the square move?", "Q2": "In what direction is the shape travelling?", "A": "To the left.", "video_name": "vcg_green"},
    ])
    write(vcg / "Test_Videos" / "v_vcg_red.mp4", "red", "right")  # the v_ prefix VILA also tries
    write(vcg / "Test_Videos" / "vcg_green.mkv", "green", "left")


if __name__ == "__main__":
    main()
