"""Pack tokenised examples into rows without padding waste, with per-sequence attention.

A *group* is one prompt followed by one or more completions that all condition on it:
    DPO with prefix sharing:  [P, C, R]  (chosen and rejected both see P, never each other)
    DPO without:              [P, C] and [P, R] as two groups
    SFT / reward scoring:     [P, C]
Groups are packed into rows (first-fit decreasing, row length = the longest group of the batch, so no row is
longer than an unpacked batch would be). Each token gets a position id restarting at 0 per group (a completion
continues from the end of its prompt: C and R both start at position len(P)), and a row gets a boolean
attention mask (R, 1, L, L), True = may attend:
    same group  AND  key <= query  AND  (key in the prompt OR key in the query's own completion).
Padding tokens attend only to themselves (no empty softmax rows); nothing reads their outputs.

The log-prob targets are flat indices into the (rows * L) positions: completion token t of a completion is
predicted by the hidden state one position earlier (for the first token: the last prompt token, shared by C and
R). Masks come from these lengths, never from comparing ids with the pad id.

`one_row=True` (groups with one completion each, e.g. PPO's prompt + response) puts every group back to back in a
single unpadded row and records each group's column range in `segments` instead of building a mask: the attention
implementation `rlhfkit_packed` (models/kernels/attention.py) then runs one causal attention call per segment.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch


@dataclass
class PackedBatch:
    """Rows of packed groups and the targets of every completion.

    input_ids:     (R, L) long   token ids (pad_id after the last group of a row)
    position_ids:  (R, L) long
    attention_mask:(R, 1, L, L) bool, True = attend (see module doc); None for a one-row batch with segments
    target_index:  (N,) long     flat index into R*L of the hidden state predicting each completion token
    target_ids:    (N,) long     the completion tokens (labels)
    target_seq:    (N,) long     which completion (0..S-1) each target belongs to
    seq_lengths:   (S,) long     completion lengths, in the order completions were given
    last_index:    (S,) long     flat index of each completion's last token (reward models read scores there)
    num_tokens:    real tokens in the batch (excluding padding)
    segments:      ((start, end), ...) column ranges of the groups of a one-row batch (R = 1), else None
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: Optional[torch.Tensor]
    target_index: torch.Tensor
    target_ids: torch.Tensor
    target_seq: torch.Tensor
    seq_lengths: torch.Tensor
    last_index: torch.Tensor
    num_tokens: int
    segments: Optional[tuple[tuple[int, int], ...]] = None

    @property
    def num_positions(self) -> int:
        return self.input_ids.numel()

    def to(self, device: torch.device) -> "PackedBatch":
        return PackedBatch(*(getattr(self, k).to(device) if isinstance(getattr(self, k), torch.Tensor)
                             else getattr(self, k) for k in self.__dataclass_fields__))


def _balanced(lengths: Sequence[int], n_rows: int) -> list[list[int]]:
    """Longest first, each group into the currently emptiest row: rows of nearly equal fill."""
    rows: list[list[int]] = [[] for _ in range(n_rows)]
    fill = [0] * n_rows
    for g in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        r = min(range(n_rows), key=fill.__getitem__)
        rows[r].append(g)
        fill[r] += lengths[g]
    return rows


def _pack_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Rows for the groups: as few as first-fit needs at `capacity`, then re-balanced so that the fullest row
    (the length every row is padded to) is as short as possible."""
    first = _first_fit(lengths, capacity)
    even = _balanced(lengths, len(first))
    fullest = lambda rows: max(sum(lengths[g] for g in r) for r in rows)  # noqa: E731
    return even if fullest(even) <= fullest(first) else first


def _first_fit(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Bin-pack group indices into rows of `capacity` tokens, longest first."""
    rows: list[list[int]] = []
    room: list[int] = []
    for g in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, free in enumerate(room):
            if lengths[g] <= free:
                rows[r].append(g)
                room[r] -= lengths[g]
                break
        else:
            rows.append([g])
            room.append(capacity - lengths[g])
    return rows


def pack_groups(groups: Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]], *, pad_id: int,
                row_length: Optional[int] = None, pack: bool = True, one_row: bool = False) -> PackedBatch:
    """Pack (prompt_ids, [completion_ids, ...]) groups into rows; completions are numbered in the order given.

    row_length: target row length for packing; rows are never shorter than the longest group, and all rows are
        cut to the fullest one. Longer rows mean less padding but more attention work per token (on CPU the
        masked attention kernel computes every block of a row).
    pack=False puts one group per row (padded to the longest), the plain layout used as the parity baseline.
    one_row=True puts all groups, in order, in one row with no padding and no mask, and sets `segments` (each group
    must have exactly one completion: a segment is then a plain causal sequence).
    Every completion must have at least one token and every prompt at least one token.
    """
    glens = [len(p) + sum(len(c) for c in cs) for p, cs in groups]
    if one_row:
        if any(len(cs) != 1 for _, cs in groups):
            raise ValueError("one_row packing takes groups with exactly one completion each")
        rows = [list(range(len(groups)))]
    else:
        capacity = max(max(glens), row_length or 0)
        rows = _pack_rows(glens, capacity) if pack else [[g] for g in range(len(groups))]
    L = max(sum(glens[g] for g in members) for members in rows)  # no row longer than its fullest member
    R = len(rows)
    input_ids = torch.full((R, L), pad_id, dtype=torch.long)
    position_ids = torch.zeros((R, L), dtype=torch.long)
    # per-token group id (unique negative ids for padding), and "part": 0 = prompt, k>0 = k-th completion
    group_id = torch.empty((R, L), dtype=torch.long)
    part = torch.zeros((R, L), dtype=torch.long)
    seq_start = {}  # completion number -> (row, start column, prompt end column)
    first_seq = []
    n = 0
    for _, cs in groups:
        first_seq.append(n)
        n += len(cs)
    seq_lengths = torch.zeros(n, dtype=torch.long)
    for r, members in enumerate(rows):
        col = 0
        for g in members:
            p, cs = groups[g]
            if len(p) == 0:
                raise ValueError("every group needs at least one prompt token")
            P = len(p)
            input_ids[r, col:col + P] = torch.tensor(p, dtype=torch.long)
            position_ids[r, col:col + P] = torch.arange(P)
            group_id[r, col:col + glens[g]] = g
            prompt_end = col + P
            col += P
            for k, c in enumerate(cs):
                if len(c) == 0:
                    raise ValueError("every completion needs at least one token")
                s = first_seq[g] + k
                input_ids[r, col:col + len(c)] = torch.tensor(c, dtype=torch.long)
                position_ids[r, col:col + len(c)] = torch.arange(P, P + len(c))
                part[r, col:col + len(c)] = k + 1
                seq_start[s] = (r, col, prompt_end)
                seq_lengths[s] = len(c)
                col += len(c)
        pad = L - col
        if pad:
            group_id[r, col:] = -torch.arange(1, pad + 1) - r * L  # unique per padding token
            position_ids[r, col:] = torch.arange(pad)
    # attention mask (R, 1, L, L), or the groups' column ranges of the one row
    mask, segments = None, None
    if one_row:
        ends = torch.tensor(glens).cumsum(0).tolist()
        segments = tuple(zip([0] + ends[:-1], ends))
    else:
        gq, gk = group_id[:, :, None], group_id[:, None, :]
        pq, pk = part[:, :, None], part[:, None, :]
        causal = torch.ones(L, L, dtype=torch.bool).tril()
        mask = (gq == gk) & causal & ((pk == 0) | (pk == pq))
        mask = mask[:, None]
    # targets
    idx, ids, seq = [], [], []
    last = torch.zeros(n, dtype=torch.long)
    for s in range(n):
        r, start, prompt_end = seq_start[s]
        length = int(seq_lengths[s])
        base = r * L
        # token j of the completion sits at column start+j and is predicted by column start+j-1,
        # except j = 0, predicted by the last prompt token (column prompt_end-1)
        pred_cols = [prompt_end - 1] + list(range(start, start + length - 1))
        idx.extend(base + c for c in pred_cols)
        ids.extend(input_ids[r, start:start + length].tolist())
        seq.extend([s] * length)
        last[s] = base + start + length - 1
    return PackedBatch(
        input_ids=input_ids, position_ids=position_ids, attention_mask=mask, segments=segments,
        target_index=torch.tensor(idx, dtype=torch.long), target_ids=torch.tensor(ids, dtype=torch.long),
        target_seq=torch.tensor(seq, dtype=torch.long), seq_lengths=seq_lengths, last_index=last,
        num_tokens=sum(glens))


def segment_mask(segments: Sequence[tuple[int, int]], length: int) -> torch.Tensor:
    """(1, 1, L, L) bool block-diagonal causal mask of a one-row batch: what `segments` means, for attention
    implementations that take a mask instead."""
    seg = torch.empty(length, dtype=torch.long)
    for k, (s, e) in enumerate(segments):
        seg[s:e] = k
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    return ((seg[:, None] == seg[None, :]) & causal)[None, None]


def pack_pairs(pairs: Sequence, *, pad_id: int, prefix_sharing: bool = True, pack: bool = True,
               row_length: Optional[int] = None) -> PackedBatch:
    """DPO/RM layout for TokenizedPair-like objects (prompt_ids, chosen_ids, rejected_ids).

    Completions are numbered chosen_0..chosen_{B-1}, rejected_0..rejected_{B-1}: sums over `target_seq` reshape
    to (2, B) -> chosen = [0], rejected = [1].
    """
    B = len(pairs)
    if prefix_sharing:
        groups = [(p.prompt_ids, [p.chosen_ids, p.rejected_ids]) for p in pairs]
        # completion numbers come out as (pair0: c, r), (pair1: c, r), ... -> renumber to chosen-first order
        order = [2 * i for i in range(B)] + [2 * i + 1 for i in range(B)]
    else:
        groups = [(p.prompt_ids, [p.chosen_ids]) for p in pairs] + [(p.prompt_ids, [p.rejected_ids]) for p in pairs]
        order = list(range(2 * B))
    batch = pack_groups(groups, pad_id=pad_id, pack=pack, row_length=row_length)
    if order != list(range(2 * B)):
        new_of_old = torch.empty(2 * B, dtype=torch.long)
        new_of_old[torch.tensor(order)] = torch.arange(2 * B)
        batch.target_seq = new_of_old[batch.target_seq]
        batch.seq_lengths = batch.seq_lengths[torch.tensor(order)]
        batch.last_index = batch.last_index[torch.tensor(order)]
    return batch
