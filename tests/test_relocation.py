"""Relocation under concurrent writers and readers, and under kill -9 (issue: MOVE_EXT).

Writers replay a seeded op sequence (tests/movers.py), so the expected content of every
file is known; a mover relocates random ranges of those files to random free places
through fallocate2 + MOVE_EXT the whole time; a reader checks that no read is torn.
"""
import os
import random
import signal
import subprocess
import sys
import time

import movers
import pytest

from pyfalloc import Volume

HERE = os.path.dirname(os.path.abspath(__file__))
B = movers.B


def spawn(*args):
    return subprocess.Popen([sys.executable, os.path.join(HERE, "movers.py"), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def expected(seed, ops):
    return b"".join(bytes([v]) * B for v in movers.model(seed, ops))


def run_scenario(tmp_path, lock=True, ops=120, writers=3):
    """Writers to the end, mover and reader until then. Returns (problems, moves, reads)."""
    image = str(tmp_path / "c.img")
    Volume.mkfs(image, "32M", group_size="8M", force=True).umount()
    stop = tmp_path / "stop"
    stop.unlink(missing_ok=True)
    names = [f"f{i}" for i in range(writers)]
    ws = [spawn("writer", image, n, i, ops, tmp_path / f"{n}.log") for i, n in enumerate(names)]
    for n in names:
        (tmp_path / f"{n}.log").unlink(missing_ok=True)
    mover = spawn("mover", image, 7, *names, "--until", stop, *([] if lock else ["--no-lock"]))
    reader = spawn("reader", image, *names, "--until", stop)
    problems = []
    for w in ws:
        _, err = w.communicate(timeout=600)
        if w.returncode:
            problems.append(f"writer failed: {err.strip().splitlines()[-1:]}")
    stop.touch()
    m_out, m_err = mover.communicate(timeout=600)
    r_out, r_err = reader.communicate(timeout=600)
    if reader.returncode:
        problems.append(f"reader: {r_err.strip()}")
    if mover.returncode:
        problems.append(f"mover failed: {m_err.strip().splitlines()[-1:]}")
    try:
        with Volume(image) as vol:
            problems += vol.fsck()
            for i, n in enumerate(names):
                if vol.read_file("/" + n) != expected(i, ops):
                    problems.append(f"/{n} differs from its writer's model")
    except OSError as e:                # e.g. a block freed twice, found while reaping
        problems.append(f"volume: {e}")
    moves = int(m_out) if m_out.strip().isdigit() else 0
    reads = int(r_out) if r_out.strip().isdigit() else 0
    return problems, moves, reads


def test_writers_readers_and_a_mover_lose_nothing(tmp_path):
    problems, moves, reads = run_scenario(tmp_path)
    assert problems == []
    assert moves >= 20, "the mover hardly moved anything: the test would prove nothing"
    assert reads > 0


def test_the_same_run_without_the_move_lock_is_caught(tmp_path):
    """Mutation check: with the mover's locks taken out, writes land in blocks the move
    gives away (or mappings collide), and the checks above see it."""
    for _ in range(8):
        problems, _, _ = run_scenario(tmp_path, lock=False)
        if problems:
            return
    pytest.fail("a mover without locks went unnoticed")


def check_after_crash(vol, name, seed, log):
    """The file holds every op its writer logged (fsync'd), plus possibly part of the next."""
    n = movers.logged(log)
    a, b = movers.model(seed, n), movers.model(seed, n + 1)
    data = vol.read_file("/" + name)
    assert len(data) in (len(a) * B, len(b) * B), f"/{name}: size {len(data)} after op {n}"
    for i in range(len(data) // B):
        blk = data[i * B:(i + 1) * B]
        allowed = {m[i] for m in (a, b) if i < len(m)}
        assert blk.count(blk[0]) == B and blk[0] in allowed, f"/{name} block {i} after op {n}: {blk[0]}"


def test_kill_9_mover_and_writers_at_random_instants(tmp_path):
    rounds = int(os.environ.get("PYFALLOC_MOVE_KILLS", 30))
    rng = random.Random(1)
    image = str(tmp_path / "k.img")
    Volume.mkfs(image, "32M", group_size="8M").umount()
    names = ["a", "b"]
    logs = {n: tmp_path / f"{n}.log" for n in names}
    interrupted = 0
    for r in range(rounds):
        procs = [spawn("writer", image, n, i, 10 ** 9, logs[n]) for i, n in enumerate(names)]
        procs.append(spawn("mover", image, r, *names))
        time.sleep(rng.uniform(0.4, 1.2))
        for p in procs:
            p.send_signal(signal.SIGKILL)
        for p in procs:
            p.communicate()
        # a kill inside a relocation leaves its donor (an unlinked inode) and maybe a move row
        tables = movers.tables_as_left(image)
        interrupted += bool(tables.moves or tables.orphans)
        with Volume(image) as vol:                  # opening recovers: frees the dead movers' donors
            assert vol.fsck() == [], f"round {r}"
            assert not vol.fs.t.moves
            for i, n in enumerate(names):
                if movers.logged(logs[n]):
                    check_after_crash(vol, n, i, logs[n])
    assert all(movers.logged(logs[n]) > rounds for n in names), "writers made too little progress"
    assert interrupted >= rounds // 10, f"only {interrupted} kills landed inside a relocation"
