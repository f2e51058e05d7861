"""Synthetic tasks with exact answers, and the character tokenizer of the shipped `tiny-tasks`
model (dllm_kernels.models.load_pretrained). Used by tools/train_tiny.py (training data) and
dllm_kernels.quality (held-out evaluation).

Tasks (prompt -> answer; the generated region is `gen_length` tokens: the answer's characters,
then end tokens):

    addition  "{a}+{b}="                  -> the decimal sum, a, b in [0, 1000)     gen_length 8
              (evaluated on uniform pairs; training also draws digit-count-balanced pairs)
    sort      "sort {digits}="            -> the digits in ascending order (2-8)    gen_length 8
    sudoku    "sudoku 12.4|3..1|....|.1.3=" -> the solved 4x4 grid, 16 digits,       gen_length 16
              row by row (each puzzle has exactly one solution; '.' is a blank)

Train / test split: a problem is held out iff crc32 of its prompt is 0 mod 10 (TEST_MODULUS), so
the split is fixed by the problem itself, the same in training and evaluation on every machine.
Sampling is driven by Python's `random.Random(seed)` (deterministic across platforms).
"""

from __future__ import annotations

import itertools
import random
import zlib
from dataclasses import dataclass

TEST_MODULUS = 10  # 1 in 10 problems is held out


class CharTokenizer:
    """One token per character, plus pad / end / mask tokens.

    ids: 0 = pad, 1 = end, 2.. = the characters in `chars` order, then mask (the last id).
    encode(str) -> list[int] (raises KeyError on a character outside the set); decode(list[int])
    -> str drops pad and end tokens and renders a mask as `mask_char` ("_"); with special=True
    they are written "<pad>", "<end>", "<mask>" instead.
    """

    def __init__(self, chars: str, mask_char: str = "_"):
        if len(set(chars)) != len(chars):
            raise ValueError("CharTokenizer: characters must be distinct")
        self.chars = chars
        self.pad_id, self.end_id = 0, 1
        self.mask_id = len(chars) + 2
        self.vocab_size = len(chars) + 3
        self.mask_char = mask_char
        self._ids = {c: i + 2 for i, c in enumerate(chars)}

    def encode(self, text: str) -> list[int]:
        try:
            return [self._ids[c] for c in text]
        except KeyError as e:
            raise KeyError(
                f"CharTokenizer.encode: character {e.args[0]!r} is not in the "
                f"vocabulary {self.chars!r}"
            ) from None

    def decode(self, ids, special: bool = False) -> str:
        out = []
        for i in ids.tolist() if hasattr(ids, "tolist") else ids:
            i = int(i)
            if 2 <= i < self.mask_id:
                out.append(self.chars[i - 2])
            elif i == self.mask_id:
                out.append("<mask>" if special else self.mask_char)
            elif i in (self.pad_id, self.end_id):
                if special:
                    out.append("<pad>" if i == self.pad_id else "<end>")
            else:
                raise ValueError(
                    f"CharTokenizer.decode: id {i} outside the vocabulary "
                    f"(0..{self.vocab_size - 1})"
                )
        return "".join(out)

    def to_dict(self) -> dict:
        return {
            "chars": self.chars,
            "pad_id": self.pad_id,
            "end_id": self.end_id,
            "mask_id": self.mask_id,
            "vocab_size": self.vocab_size,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "CharTokenizer":
        tok = cls(d["chars"])
        for k in ("pad_id", "end_id", "mask_id", "vocab_size"):
            if k in d and d[k] != getattr(tok, k):
                raise ValueError(
                    f"CharTokenizer: {k} {d[k]} does not match the characters ({getattr(tok, k)})"
                )
        return tok

    def __repr__(self) -> str:
        return (
            f"CharTokenizer({self.chars!r}, vocab_size={self.vocab_size}, mask_id={self.mask_id})"
        )


CHARS = "0123456789+=.| sortudk"  # the tiny-tasks vocabulary (ids 2..23; mask 24)


def tokenizer() -> CharTokenizer:
    """The tokenizer of every task here (and of the shipped tiny-tasks model)."""
    return CharTokenizer(CHARS)


def is_heldout(prompt: str) -> bool:
    """The fixed split: held out (test) iff crc32(prompt) % TEST_MODULUS == 0."""
    return zlib.crc32(prompt.encode()) % TEST_MODULUS == 0


@dataclass(frozen=True)
class Problem:
    prompt: str
    answer: str


class Task:
    """A task family: sample(rng, split) -> Problem, plus its generation layout."""

    name: str
    gen_length: int
    block_length: int  # the decode block the quality harness uses by default
    description: str

    def _draw(self, rng: random.Random) -> Problem:
        raise NotImplementedError

    def _draw_train(self, rng: random.Random) -> Problem:
        """The training distribution (default: the evaluation distribution)."""
        return self._draw(rng)

    def sample(self, rng: random.Random, split: str = "train") -> Problem:
        """One problem of `split` ("train", "test", or "any"); "train" draws from the training
        distribution (see the task), the others from the evaluation distribution."""
        if split not in ("train", "test", "any"):
            raise ValueError(f"Task.sample: split must be 'train', 'test' or 'any', got {split!r}")
        draw = self._draw_train if split == "train" else self._draw
        while True:
            p = draw(rng)
            if split == "any" or is_heldout(p.prompt) == (split == "test"):
                return p

    def heldout(self, n: int, seed: int = 0) -> list[Problem]:
        """n distinct held-out problems, the same for the same (n, seed) everywhere."""
        rng = random.Random(f"{self.name}-heldout-{seed}")
        seen, out = set(), []
        tries = 0
        while len(out) < n:
            p = self.sample(rng, "test")
            tries += 1
            if p.prompt not in seen:
                seen.add(p.prompt)
                out.append(p)
            elif tries > 100 * n + 1000:
                raise ValueError(f"{self.name}: fewer than {n} distinct held-out problems")
        return out

    def target_ids(self, p: Problem, tok: CharTokenizer) -> list[int]:
        """The generated region a correct decode produces: the answer, then end tokens."""
        ids = tok.encode(p.answer)
        if len(ids) > self.gen_length:
            raise ValueError(
                f"{self.name}: answer {p.answer!r} longer than gen_length {self.gen_length}"
            )
        return ids + [tok.end_id] * (self.gen_length - len(ids))

    def correct(self, p: Problem, generated, tok: CharTokenizer) -> bool:
        """Exact match of the whole generated region (answer and end tokens)."""
        gen = generated.tolist() if hasattr(generated, "tolist") else list(generated)
        return [int(t) for t in gen] == self.target_ids(p, tok)


class Addition(Task):
    name, gen_length, block_length = "addition", 8, 8
    description = "'{a}+{b}=' -> a + b, a, b uniform in [0, 1000)"

    def _draw(self, rng):
        a, b = rng.randrange(1000), rng.randrange(1000)
        return Problem(f"{a}+{b}=", str(a + b))

    def _draw_train(self, rng):
        """Half uniform pairs, half with the operands' digit counts (1-3) drawn uniformly, so
        that short operands (rare under the uniform draw) are seen often enough."""
        if rng.random() < 0.5:
            return self._draw(rng)
        la, lb = rng.randint(1, 3), rng.randint(1, 3)
        a = rng.randrange(10 ** (la - 1) if la > 1 else 0, 10**la)
        b = rng.randrange(10 ** (lb - 1) if lb > 1 else 0, 10**lb)
        return Problem(f"{a}+{b}=", str(a + b))


class Sort(Task):
    name, gen_length, block_length = "sort", 8, 8
    description = "'sort {digits}=' -> the digits ascending, 2-8 digits"

    def _draw(self, rng):
        n = rng.randint(2, 8)
        d = "".join(rng.choice("0123456789") for _ in range(n))
        return Problem(f"sort {d}=", "".join(sorted(d)))


def _sudoku_grids() -> list[tuple[int, ...]]:
    """All 288 solved 4x4 Sudoku grids (rows, columns and 2x2 boxes hold 1-4 once)."""
    perms = list(itertools.permutations((1, 2, 3, 4)))
    grids = []
    for rows in itertools.product(perms, repeat=4):
        if any(len({r[c] for r in rows}) != 4 for c in range(4)):
            continue
        if any(
            len({rows[r + i][c + j] for i in (0, 1) for j in (0, 1)}) != 4
            for r in (0, 2)
            for c in (0, 2)
        ):
            continue
        grids.append(tuple(v for r in rows for v in r))
    return grids


class Sudoku(Task):
    name, gen_length, block_length = "sudoku", 16, 16
    description = (
        "'sudoku 12.4|3..1|....|.1.3=' -> the 16 digits of the unique solution, 4-10 blanks"
    )

    def __init__(self):
        self.grids = _sudoku_grids()
        # has[c][v]: bitmask over grids with value v in cell c (a puzzle's consistent grids = AND)
        self.has = [[0] * 5 for _ in range(16)]
        for g, grid in enumerate(self.grids):
            for c, v in enumerate(grid):
                self.has[c][v] |= 1 << g

    def solutions(self, givens: dict[int, int]) -> int:
        """How many grids agree with givens {cell: value}."""
        m = (1 << len(self.grids)) - 1
        for c, v in givens.items():
            m &= self.has[c][v]
        return bin(m).count("1")

    def _draw(self, rng):
        grid = self.grids[rng.randrange(len(self.grids))]
        want = rng.randint(4, 10)  # blanks wanted
        givens = dict(enumerate(grid))
        order = list(range(16))
        rng.shuffle(order)
        blanks = 0
        for c in order:  # remove cells while the solution stays unique
            if blanks == want:
                break
            v = givens.pop(c)
            if self.solutions(givens) == 1:
                blanks += 1
            else:
                givens[c] = v
        cells = "".join(str(givens[c]) if c in givens else "." for c in range(16))
        rows = "|".join(cells[i : i + 4] for i in range(0, 16, 4))
        return Problem(f"sudoku {rows}=", "".join(map(str, grid)))


TASKS: dict[str, Task] = {t.name: t for t in (Addition(), Sort(), Sudoku())}


def get(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; tasks: {list(TASKS)}") from None
