"""The tiny model's SFT section the end-to-end study tests share: one step, a few samples."""

TINY_SFT = {
    "model": "tiny",
    "base_n": 4,
    "epochs": 1,
    "batch_size": 4,
    "max_length": 4096,
    "trl": {"max_steps": 1},
}

#: One GRPO step of two episodes on two tasks, two turns of ≤ 16 tokens (``runs`` added by each).
TINY_RL = {
    "tasks": 2,
    "max_steps": 1,
    "num_generations": 2,
    "tasks_per_step": 1,
    "max_turns": 2,
    "max_tokens": 16,
}
