"""Render trajectories as text for LLM judges, and split long ones into chunks (never cut)."""

from __future__ import annotations

from searchprime.records import Trajectory

__all__ = ["chunk_blocks", "render_blocks", "render_capped"]


def render_blocks(traj: Trajectory) -> list[str]:
    """One text block per turn: the model output, then what the environment returned."""
    blocks = []
    for turn in traj.turns:
        parts = [f"[Turn {turn.index}] AGENT ({turn.action.kind}):"]
        if turn.reasoning:
            parts.append(f"(reasoning) {turn.reasoning.strip()}")
        parts.append(turn.output.strip())
        if turn.observation:
            parts.append(f"[Turn {turn.index}] ENVIRONMENT:\n{turn.observation.strip()}")
        blocks.append("\n".join(parts))
    if traj.final_answer is not None:
        blocks.append(f"[Final answer] {traj.final_answer}")
    return blocks


def chunk_blocks(blocks: list[str], max_chars: int) -> list[str]:
    """Pack blocks into chunks of at most ``max_chars``; an oversized block is split in parts.

    Every character of every block lands in exactly one chunk.
    """
    pieces: list[str] = []
    for block in blocks:
        if len(block) <= max_chars:
            pieces.append(block)
            continue
        head = block.split("\n", 1)[0][:60]
        step = max(1, max_chars - len(head) - 20)
        for k, start in enumerate(range(0, len(block), step)):
            part = block[start : start + step]
            pieces.append(part if k == 0 else f"{head} (continued)\n{part}")
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 2 + len(piece) > max_chars:
            chunks.append(current)
            current = piece
        else:
            current = f"{current}\n\n{piece}" if current else piece
    if current or not chunks:
        chunks.append(current)
    return chunks


def render_capped(traj: Trajectory, max_chars: int) -> str:
    """The whole trajectory, or its start and end with an explicit omission marker."""
    text = "\n\n".join(render_blocks(traj))
    if len(text) <= max_chars:
        return text
    half = max_chars // 2
    omitted = len(text) - 2 * half
    return f"{text[:half]}\n[... {omitted} characters omitted ...]\n{text[-half:]}"
