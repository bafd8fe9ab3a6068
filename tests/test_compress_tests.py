"""Trace and test-output compressors on real runner output (pytest, unittest run here) and captured samples."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
from compress_helpers import run

from headroom.engine.compressors.base import Block, Skip
from headroom.engine.compressors.testout import TestOutputCompressor
from headroom.engine.compressors.traces import TraceCompressor

SUITE = """
import json
import pytest

def helper(x):
    return json.loads(x)

@pytest.mark.parametrize("i", range(300))
def test_pass(i):
    assert i >= 0

def test_fail_assert():
    data = {"a": 1, "b": 2}
    assert data == {"a": 1, "b": 3}

def test_fail_lib():
    helper("{not json")

def rec(n):
    return rec(n + 1)

def test_recursion():
    rec(0)

@pytest.mark.skip(reason="nope")
def test_skip():
    pass
"""

UNITTEST = """
import json
import unittest

class T(unittest.TestCase):
    def test_bad(self):
        self.assertEqual({"a": 1}, {"a": 2})

    def test_err(self):
        json.loads("{x")

for i in range(200):
    setattr(T, f"test_gen_{i:03d}", lambda self: None)
"""

# Captured from javac/java 21 and node 18 (frames repeated exactly as printed).
JAVA = (
    "java.lang.RuntimeException: wrapper failed\n\tat App.main(App.java:5)\n"
    "Caused by: java.lang.IllegalStateException: bad state\n"
    + "\tat App.depth(App.java:2)\n"
    * 16
    + "\tat App.lambda$main$0(App.java:4)\n\tat java.base/java.lang.Iterable.forEach(Iterable.java:75)\n"
    "\tat App.main(App.java:4)\n"
)
NODE = (
    "TypeError: cannot read property 'x' of undefined\n    at rec (/srv/app/st.js:1:35)\n"
    + "    at rec (/srv/app/st.js:1:100)\n" * 12
    + "    at /srv/app/st.js:2:21\n    at Array.map (<anonymous>)\n    at Object.<anonymous> (/srv/app/st.js:2:11)\n"
    "    at Module._compile (node:internal/modules/cjs/loader:1521:14)\n"
    "    at Module._extensions..js (node:internal/modules/cjs/loader:1623:10)\n"
    "    at Module.load (node:internal/modules/cjs/loader:1266:32)\n"
    "    at Module._load (node:internal/modules/cjs/loader:1091:12)\n"
    "    at Function.executeUserEntryPoint [as runMain] (node:internal/modules/run_main:164:12)\n"
    "    at node:internal/main/run_main_module:28:49\n"
)
GO_PANIC = (
    "panic: runtime error: index out of range [5] with length 3\n\ngoroutine 1 [running]:\n"
    "main.(*Store).Get(0xc000012180, {0x4b2c1e, 0x5})\n\t/home/dev/app/store.go:57 +0x1d\n"
    + "".join(f"main.walk(0x{i})\n\t/home/dev/app/walk.go:12 +0x45\n" for i in range(9, -1, -1))
    + "main.handler(0xc00007e000)\n\t/home/dev/app/main.go:30 +0x2b\n"
    + "".join(
        f"net/http.{fn}(0xc000016140, {{0x6c1e28, 0xc0000b6000}}, 0xc0000ac100)\n"
        f"\t/usr/local/go/src/net/http/server.go:{ln} +0x142\n"
        for fn, ln in [
            ("HandlerFunc.ServeHTTP", 2136),
            ("(*ServeMux).ServeHTTP", 2514),
            ("serverHandler.ServeHTTP", 2938),
        ]
    )
    + "created by net/http.(*Server).Serve in goroutine 1\n\t/usr/local/go/src/net/http/server.go:3086 +0x5cb\n"
    "exit status 2\n"
)
GO_TEST = (
    "".join(f"=== RUN   TestParse{i}\n--- PASS: TestParse{i} (0.00s)\n" for i in range(120))
    + '=== RUN   TestStore\n    store_test.go:41: Get("k") = "", want "v"\n--- FAIL: TestStore (0.01s)\nFAIL\n'
    "FAIL\texample.com/app/store\t0.214s\nok  \texample.com/app/parse\t0.105s\nFAIL\n"
)
JEST = (
    "PASS src/util.test.js\n"
    + "".join(f"  ✓ formats value {i} (2 ms)\n" for i in range(150))
    + "FAIL src/cart.test.js\n  ● cart › applies discount\n\n"
    "    expect(received).toBe(expected) // Object.is equality\n\n"
    "    Expected: 90\n    Received: 100\n\n      12 |   const cart = makeCart();\n"
    "    > 13 |   expect(total(cart)).toBe(90);\n"
    "         |                       ^\n\n      at Object.<anonymous> (src/cart.test.js:13:23)\n\n"
    "Tests:       1 failed, 150 passed, 151 total\nTest Suites: 1 failed, 1 passed, 2 total\nTime:        1.8 s\n"
)
CARGO = (
    "   Compiling ct v0.1.0 (/tmp/ct)\n    Finished `test` profile [unoptimized + debuginfo] target(s) in 1.35s\n"
    "     Running unittests src/lib.rs (target/debug/deps/ct-c4066ebb79ee0019)\n\nrunning 103 tests\n"
    + "".join(f"test tests::ok_{i} ... ok\n" for i in range(100))
    + "test tests::t3 ... FAILED\ntest tests::t4 ... FAILED\ntest tests::ig ... ignored\n\nfailures:\n\n"
    "---- tests::t3 stdout ----\n\nthread 'tests::t3' (32373) panicked at src/lib.rs:7:23:\n"
    "assertion `left == right` failed: math is broken\n  left: 4\n right: 5\nstack backtrace:\n"
    "   0: __rustc::rust_begin_unwind\n             at /rustc/5980761/library/std/src/panicking.rs:689:5\n"
    "   1: core::panicking::panic_fmt\n             at /rustc/5980761/library/core/src/panicking.rs:80:14\n"
    "   2: core::panicking::assert_failed_inner\n             at /rustc/5980761/library/core/src/panicking.rs:434:23\n"
    "   3: ct::tests::t3\n             at ./src/lib.rs:7:23\n"
    "   4: core::ops::function::FnOnce::call_once\n"
    "             at /rustc/5980761/library/core/src/ops/function.rs:250:5\n"
    "\n---- tests::t4 stdout ----\n\nthread 'tests::t4' (32374) panicked at src/lib.rs:8:57:\n"
    "index out of bounds: the len is 0 but the index is 3\n\n\nfailures:\n    tests::t3\n    tests::t4\n\n"
    "test result: FAILED. 100 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.12s\n\n"
    "error: test failed, to rerun pass `--lib`\n"
)


def _run_py(args: list[str], cwd: Path) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    return proc.stdout + proc.stderr


@pytest.fixture
def pytest_output(tmp_path: Path) -> str:
    (tmp_path / "test_sample.py").write_text(SUITE)
    return _run_py(
        ["-m", "pytest", "-v", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "test_sample.py"], tmp_path
    )


def test_pytest_verbose_keeps_failures_and_folds_passes(pytest_output: str) -> None:
    c = TestOutputCompressor()
    assert c.sniff(Block(pytest_output))
    out, ctx = run(c, pytest_output)
    assert "passed tests elided" in out
    assert "test_pass[17] PASSED" not in out
    for name in ("test_fail_assert", "test_fail_lib", "test_recursion"):
        assert f"FAILED test_sample.py::{name}" in out
    assert "E       AssertionError: assert {'a': 1, 'b': 2} == {'a': 1, 'b': 3}" in out
    assert "JSONDecodeError" in out and "RecursionError: maximum recursion depth exceeded" in out
    assert "3 failed, 300 passed, 1 skipped" in out
    assert "[recursion:" in out
    assert len(out) < len(pytest_output) / 4
    assert ctx.dropped["passed tests"] >= 290


def test_pytest_quiet_progress_rows(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(SUITE)
    text = _run_py(["-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "test_sample.py"], tmp_path)
    out, _ = run(TestOutputCompressor(), text)
    assert "E       AssertionError" in out and "3 failed, 300 passed, 1 skipped" in out
    assert "short test summary info" in out


def test_unittest_verbose(tmp_path: Path) -> None:
    (tmp_path / "ut_sample.py").write_text(UNITTEST)
    text = _run_py(["-m", "unittest", "-v", "ut_sample"], tmp_path)
    c = TestOutputCompressor()
    assert c.sniff(Block(text))
    out, _ = run(c, text)
    assert "[200 passed tests elided" in out
    assert "FAIL: test_bad (ut_sample.T.test_bad)" in out and "AssertionError: {'a': 1} != {'a': 2}" in out
    assert "ERROR: test_err" in out and "JSONDecodeError" in out
    assert "Ran 202 tests" in out and "FAILED (failures=1, errors=1)" in out


@pytest.mark.parametrize(
    ("text", "must"),
    [
        (GO_TEST, ["--- FAIL: TestStore", "store_test.go:41:", "FAIL\texample.com/app/store\t0.214s"]),
        (JEST, ["● cart › applies discount", "Expected: 90", "Tests:       1 failed, 150 passed, 151 total"]),
        (CARGO, ["test tests::t3 ... FAILED", "math is broken", "ct::tests::t3", "test result: FAILED. 100 passed"]),
    ],
    ids=["go", "jest", "cargo"],
)
def test_other_runners_keep_failures_and_summary(text: str, must: list[str]) -> None:
    c = TestOutputCompressor()
    assert c.sniff(Block(text))
    out, ctx = run(c, text)
    for s in must:
        assert s in out
    assert len(out) < len(text) / 2
    assert sum(ctx.dropped.values()) > 0


def test_python_traceback_real(tmp_path: Path) -> None:
    (tmp_path / "boom.py").write_text(
        "import json\n\ndef a(n):\n    return json.loads('{bad') if n == 0 else b(n - 1)\n\n"
        "def b(n):\n    return a(n)\n\ntry:\n    a(400)\nexcept ValueError as e:\n"
        "    raise RuntimeError('config load failed') from e\n"
    )
    text = _run_py(["boom.py"], tmp_path)
    c = TraceCompressor()
    assert c.sniff(Block(text))
    out, _ = run(c, text)
    assert "json.decoder.JSONDecodeError" in out and "RuntimeError: config load failed" in out
    assert "[recursion: the 2 frames above repeated" in out
    assert out.count("in raw_decode") == 1 and len(out) < len(text) / 4


@pytest.mark.parametrize(
    ("text", "must"),
    [
        (
            JAVA,
            [
                "java.lang.RuntimeException: wrapper failed",
                "Caused by: java.lang.IllegalStateException",
                "App.lambda$main$0",
            ],
        ),
        (
            NODE,
            [
                "TypeError: cannot read property",
                "at rec (/srv/app/st.js:1:35)",
                "at node:internal/main/run_main_module",
            ],
        ),
        (GO_PANIC, ["panic: runtime error", "main.(*Store).Get", "main.handler(0xc00007e000)", "created by net/http"]),
    ],
    ids=["java", "node", "go"],
)
def test_traces_keep_exceptions_and_user_frames(text: str, must: list[str]) -> None:
    c = TraceCompressor()
    assert c.sniff(Block(text))
    out, _ = run(c, text)
    for s in must:
        assert s in out
    assert "[recursion:" in out and len(out) < len(text)


def test_library_frames_fold() -> None:
    out, _ = run(TraceCompressor(), NODE)
    assert "Module._compile" not in out and "Module._load" not in out


def test_deterministic(pytest_output: str) -> None:
    assert run(TestOutputCompressor(), pytest_output)[0] == run(TestOutputCompressor(), pytest_output)[0]


@pytest.mark.parametrize(
    "junk",
    [
        bytes(range(256)).decode("latin-1") * 200,
        "\x00\x01\x02 PASSED ::\r\n" * 500,
        "test a ... ok\u2028\ud800 FAILED\x0c\n" * 400,
        "Traceback (most recent call last):\n" + '  File "x"\n' * 300,
        "",
    ],
)
def test_junk_never_crashes(junk: str) -> None:
    for c in (TestOutputCompressor(), TraceCompressor()):
        c.sniff(Block(junk))
        with contextlib.suppress(Skip):
            run(c, junk)


def test_prose_is_not_test_output() -> None:
    text = "The test plan covers parsing.\nWe ran it twice and it passed.\n" * 20
    assert not TestOutputCompressor().sniff(Block(text))
    assert not TraceCompressor().sniff(Block(text))
