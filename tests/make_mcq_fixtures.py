"""Write the bundled fixtures of the video multiple-choice tasks (``tasks/understanding/fixtures/``).

Each fixture is a handful of questions we wrote ourselves, in the benchmark's official format (the field names and
types of the hub rows lmms-eval loads, or MVBench's ``json/<sub-task>.json`` files) and its media layout, with tiny
videos generated here: 16x16 RGB, lossless H.264 (libx264rgb), frame ``i`` filled with the colour ``(97, i, 255 - i)``
so tests can read which source frames a frame rule took (green channel = frame number).

Run ``python tests/make_mcq_fixtures.py`` to rebuild them (deterministic; the committed files are its output).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent / "tasks" / "understanding" / "fixtures"


def numbered_video(path: Path, frames: int = 32, fps: float = 8.0) -> None:
    """A ``frames``-frame 16x16 video whose frame ``i`` has green value ``i`` (written losslessly)."""
    from omnieval.media import Video, write_video

    array = np.zeros((frames, 16, 16, 3), np.uint8)
    array[..., 0] = 97
    array[..., 1] = np.arange(frames, dtype=np.uint8)[:, None, None]
    array[..., 2] = 255 - np.arange(frames, dtype=np.uint8)[:, None, None]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(Video(array, fps=fps), path)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


# -- Video-MME: lmms-lab/Video-MME rows (all strings; real category names, its aggregator needs them) --------------
VIDEOMME = [
    {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
     "url": "https://www.youtube.com/watch?v=fx00000001", "videoID": "fx00000001", "question_id": "001-1",
     "task_type": "Counting Problem", "question": "How many red squares appear in the video?",
     "options": ["A. One.", "B. Two.", "C. Three.", "D. Four."], "answer": "B"},
    {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
     "url": "https://www.youtube.com/watch?v=fx00000001", "videoID": "fx00000001", "question_id": "001-2",
     "task_type": "Temporal Reasoning", "question": "What happens after the square turns green?",
     "options": ["A. It disappears.", "B. It grows.", "C. It moves left.", "D. Nothing."], "answer": "C"},
    {"video_id": "002", "duration": "medium", "domain": "Sports Competition", "sub_category": "Basketball",
     "url": "https://www.youtube.com/watch?v=fx00000002", "videoID": "fx00000002", "question_id": "002-1",
     "task_type": "Action Recognition", "question": "What is the player doing?",
     "options": ["A. Dribbling.", "B. Shooting.", "C. Passing.", "D. Resting."], "answer": "A"},
    {"video_id": "003", "duration": "long", "domain": "Life Record", "sub_category": "Pet & Animal",
     "url": "https://www.youtube.com/watch?v=fx00000003", "videoID": "fx00000003", "question_id": "003-1",
     "task_type": "Object Recognition", "question": "Which animal is shown?",
     "options": ["A. A cat.", "B. A dog.", "C. A bird.", "D. A fish."], "answer": "D"},
]

# -- MVBench: json/<sub-task>.json of the `video` branch; one question per sub-task (two for action_sequence) -----
MVBENCH_DIRS = {
    "object_interaction": "star/Charades_segment", "action_sequence": "star/Charades_segment",
    "action_prediction": "star/Charades_segment", "action_localization": "sta/sta_video_segment",
    "moving_count": "clevrer/video_validation", "fine_grained_pose": "nturgbd_convert",
    "character_order": "perception/videos", "object_shuffle": "perception/videos", "egocentric_navigation": "vlnqa",
    "moving_direction": "clevrer/video_validation", "episodic_reasoning": "tvqa/video_fps3_hq_segment",
    "fine_grained_action": "Moments_in_Time_Raw/videos", "scene_transition": "scene_qa/video",
    "state_change": "perception/videos", "moving_attribute": "clevrer/video_validation",
    "action_antonym": "ssv2_video_mp4", "unexpected_action": "FunQA_test/test",
    "counterfactual_inference": "clevrer/video_validation", "object_existence": "clevrer/video_validation",
    "action_count": "perception/videos",
}
_BOUNDED = {"action_sequence", "action_prediction", "object_interaction", "action_localization", "episodic_reasoning"}


def mvbench_items(sub: str, k: int) -> list[dict]:
    candidates = [["Opened the door.", "Closed the box.", "Took the cup."], ["up", "down", "left", "right"],
                  ["yes", "no"], ["a man walking", "a dog", "a cat", "two birds", "nothing"]][k % 4]
    item = {"video": f"{sub}_{k}.mp4", "question": f"What does the clip of {sub.replace('_', ' ')} show?",
            "candidates": candidates, "answer": candidates[(k + 1) % len(candidates)]}
    if sub in _BOUNDED:
        item.update(start=0.5, end=3.0)
    return [item]


# -- NExT-QA (MC config): the NExT-QA CSV columns; answer is an int index, question ends with a space ---------------
NEXTQA = [
    {"video": 4010069381, "frame_count": 32, "width": 16, "height": 16, "question": "why did the boy run ",
     "answer": 2, "qid": 3, "type": "CW", "a0": "to hide ", "a1": "to play", "a2": "chasing the dog", "a3": "it rained",
     "a4": "to eat"},
    {"video": 4010069381, "frame_count": 32, "width": 16, "height": 16, "question": "what did the boy do after running",
     "answer": 0, "qid": 4, "type": "TN", "a0": "sat down", "a1": "jumped", "a2": "cried", "a3": "slept", "a4": "ran"},
    {"video": 5240001111, "frame_count": 32, "width": 16, "height": 16, "question": "how many people are there ",
     "answer": 4, "qid": 0, "type": "DC", "a0": "one", "a1": "two", "a2": "three", "a3": "four", "a4": "five"},
]

# -- EgoSchema (Subset config): lettered options; answer = the option's index ---------------------------------------
EGOSCHEMA = [
    {"question_idx": "0074f737-11cb-497d-8d07-77c3a8127391", "question": "What is the overall goal of c's actions?",
     "video_idx": "0074f737-11cb-497d-8d07-77c3a8127391",
     "option": ["A. cooking dinner", "B. cleaning the kitchen", "C. fixing a bike", "D. painting a wall",
                "E. reading a book"], "answer": "1"},
    {"question_idx": "00b9a0de-c59e-49cb-a127-6081e2fb8c8e", "question": "Which tool does c use most often?",
     "video_idx": "00b9a0de-c59e-49cb-a127-6081e2fb8c8e",
     "option": ["A. a hammer", "B. a knife", "C. a brush", "D. a wrench", "E. a spoon"], "answer": "3"},
    {"question_idx": "00f93e1e-cf4e-4835-88b4-4ad68216e86f", "question": "How does c prepare the surface?",
     "video_idx": "00f93e1e-cf4e-4835-88b4-4ad68216e86f",
     "option": ["A. sanding it", "B. washing it", "C. drying it", "D. painting it", "E. ignoring it"], "answer": "0"},
]

# -- PerceptionTest (mc_question_val): three options without letters; answer_id int ---------------------------------
PERCEPTIONTEST = [
    {"video_name": "video_10909", "question": "What is the person going to do next?", "question_id": 0,
     "options": ["put the cup down", "drink from the cup", "throw the cup"], "answer_id": 1, "area": "physics",
     "reasoning": "predictive", "tag": ["action counting"]},
    {"video_name": "video_10909", "question": "How many objects did the person touch?", "question_id": 1,
     "options": ["2", "3", "4"], "answer_id": 0, "area": "memory", "reasoning": "descriptive", "tag": ["counting"]},
    {"video_name": "video_2204", "question": "Which object was moved first?", "question_id": 0,
     "options": ["the cup", "the book", "the pen"], "answer_id": 2, "area": "semantics", "reasoning": "explanatory",
     "tag": ["sequencing"]},
]

# -- TempCompass (multi-choice): the question holds the options; the answer is the option line -----------------------
TEMPCOMPASS = [
    {"video_id": "1024_a", "question": "What is the speed of the car in the video?\nA. slow\nB. fast\nC. normal",
     "answer": "B. fast", "dim": "speed"},
    {"video_id": "1024_a", "question": "In which direction does the car move?\nA. left\nB. right\nC. up\nD. down",
     "answer": "A. left", "dim": "direction"},
    {"video_id": "2048_b", "question": "What is the man doing?\nA. running\nB. swimming\nC. dancing",
     "answer": "C. dancing", "dim": "action"},
    {"video_id": "2048_b", "question": "What happens first?\nA. the door opens\nB. the light turns on",
     "answer": "B. the light turns on", "dim": "order"},
]

# -- LongVideoBench (validation parquet columns); "N/A" marks absent options --------------------------------------------
def _lvb(i, video, question, options, correct, group, category, duration):
    opts = options + ["N/A"] * (5 - len(options))
    return {"video_id": video, "question": question, "question_wo_referring_query": question,
            **{f"option{k}": o for k, o in enumerate(opts)}, "correct_choice": correct, "position": [0, 1],
            "topic_category": "NP-News-Programs", "question_category": category, "level": "L1-Perception",
            "id": f"{video}_{i}", "video_path": f"{video}.mp4", "subtitle_path": f"{video}_en.json",
            "duration_group": group, "starting_timestamp_for_subtitles": 0, "duration": duration, "view_count": 1000}


LONGVIDEOBENCH = [
    _lvb(0, "86CxyhFV9MI", "What is written on the sign at the start?", ["STOP", "EXIT", "OPEN", "CLOSED"], 2, 15,
         "S2E", 4.0),
    _lvb(1, "86CxyhFV9MI", "What colour is the car when the man enters?", ["red", "blue", "green"], 0, 15, "T3O", 4.0),
    _lvb(2, "Ax3fWqPZm6A", "Which object appears after the dog?", ["a ball", "a cat", "a tree", "a hat", "a cup"], 4,
         60, "S2E", 3.5),
]

# -- MLVU dev: the question holds "(A) ..." options, the answer is the letter; all seven task types -----------------
_MLVU_TYPES = ["plotQA", "needle", "ego", "count", "order", "anomaly_reco", "topic_reasoning"]
MLVU = [
    {"video_name": f"{t}_{i % 2}.mp4", "duration": 4.0,
     "question": f"Question about {t}?\n(A) first\n(B) second\n(C) third\n(D) fourth",
     "candidates": ["first", "second", "third", "fourth"], "answer": "ABCD"[i % 4], "task_type": t,
     "question_id": f"{t}_{i}"}
    for i, t in enumerate(_MLVU_TYPES)
] + [{"video_name": "count_1.mp4", "duration": 4.0, "question": "How many cars pass?\n(A) 1\n(B) 2\n(C) 3\n(D) 4",
      "candidates": ["1", "2", "3", "4"], "answer": "C", "task_type": "count", "question_id": "count_extra"}]


def main() -> int:
    write_jsonl(ROOT / "videomme" / "test.jsonl", VIDEOMME)
    for vid in sorted({d["videoID"] for d in VIDEOMME}):
        numbered_video(ROOT / "videomme" / "data" / f"{vid}.mp4")

    for k, (sub, folder) in enumerate(MVBENCH_DIRS.items()):
        items = mvbench_items(sub, k) + (mvbench_items(sub, k + 1) if sub == "action_sequence" else [])
        target = ROOT / "mvbench" / "json" / f"{sub}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(items, indent=1) + "\n", encoding="utf-8")
        for item in items:
            numbered_video(ROOT / "mvbench" / folder / item["video"], frames=24 + k)

    write_jsonl(ROOT / "nextqa" / "test.jsonl", NEXTQA)
    for vid in sorted({d["video"] for d in NEXTQA}):
        numbered_video(ROOT / "nextqa" / "NExTVideo" / f"{vid}.mp4")

    write_jsonl(ROOT / "egoschema" / "test.jsonl", EGOSCHEMA)
    for d in EGOSCHEMA:
        numbered_video(ROOT / "egoschema" / "videos" / f"{d['video_idx']}.mp4")

    write_jsonl(ROOT / "perceptiontest" / "validation.jsonl", PERCEPTIONTEST)
    for vid in sorted({d["video_name"] for d in PERCEPTIONTEST}):
        numbered_video(ROOT / "perceptiontest" / "videos" / f"{vid}.mp4")

    write_jsonl(ROOT / "tempcompass" / "test.jsonl", TEMPCOMPASS)
    for vid in sorted({d["video_id"] for d in TEMPCOMPASS}):
        numbered_video(ROOT / "tempcompass" / "videos" / f"{vid}.mp4")

    write_jsonl(ROOT / "longvideobench" / "validation.jsonl", LONGVIDEOBENCH)
    for d in LONGVIDEOBENCH:
        frames = int(d["duration"] * 8)
        path = ROOT / "longvideobench" / "videos" / d["video_path"]
        if not path.exists():
            numbered_video(path, frames=frames)

    write_jsonl(ROOT / "mlvu" / "test.jsonl", MLVU)
    for name in sorted({d["video_name"] for d in MLVU}):
        numbered_video(ROOT / "mlvu" / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
