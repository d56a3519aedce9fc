"""The example executors against a RecordingContext: no server, no worker."""
import json
import threading
import time

import pytest

from ufdl_example_executors import ShellExecutor, WordCounter, plugin
from ufdl_pyramid.executors import ExecutionError, JobCancelled, RecordingContext
from ufdl_pyramid.plugins import load_plugins


def shell(command, text="", **parameters):
    context = RecordingContext({"input": text}, {"command": command, "timeout": 60, **parameters},
                               job={"pk": 1, "input_values": {"input": {"value": text, "type": "str"}}})
    return context


def test_the_plugin_registers_both_under_the_names_the_templates_use():
    assert plugin.ufdl_register_executors() == [ShellExecutor, WordCounter]
    executors = load_plugins(strict=True).executors
    assert executors["ufdl_example_executors.ShellExecutor"] is ShellExecutor
    assert executors["ufdl_example_executors.WordCounter"] is WordCounter


def test_shell_gives_the_input_on_stdin_and_keeps_stdout():
    context = shell("tr a-z A-Z", "hello world\n")
    ShellExecutor().execute(context)
    assert context.outputs == {("output", "BLOB"): b"HELLO WORLD\n"}


def test_shell_substitutes_placeholders_and_runs_no_shell():
    context = shell("echo {input} '{{nope}}' $HOME {word} {} {a,b} '{print $1}'", "in", word="w")
    ShellExecutor().execute(context)
    assert context.outputs[("output", "BLOB")] == b"in {nope} $HOME w {} {a,b} {print $1}\n"


def test_shell_refuses_a_placeholder_that_names_no_input_or_parameter():
    """It was left in the command as it stood: a typo ran the command with the braces as text."""
    context = shell("echo {input} {inptu}", "in")
    with pytest.raises(ExecutionError) as refused:
        ShellExecutor().execute(context)
    assert str(refused.value) == ("the command line's placeholder {inptu} names no input or parameter (there are "
                                  "command, input, timeout); write {{inptu}} for the text {inptu}")
    assert context.outputs == {}


def test_shell_failure_is_an_error_with_the_tail_of_stderr():
    context = shell("sh -c 'echo broken >&2; exit 3'")
    with pytest.raises(ExecutionError, match="exited with status 3: broken"):
        ShellExecutor().execute(context)
    assert context.outputs == {("stderr", "BLOB"): b"broken\n"}


def test_shell_false_fails():
    with pytest.raises(ExecutionError, match="false exited with status 1"):
        ShellExecutor().execute(shell("false"))


def test_shell_unknown_program_fails_clearly():
    with pytest.raises(ExecutionError, match="cannot run 'no-such-program-xyz'"):
        ShellExecutor().execute(shell("no-such-program-xyz"))


def test_shell_timeout_kills_the_process_group():
    began = time.monotonic()
    with pytest.raises(ExecutionError, match="timed out after 0.3 s"):
        ShellExecutor().execute(shell("sh -c 'sleep 30; echo late'", timeout=0.3))
    assert time.monotonic() - began < 5


def test_shell_cancellation_kills_the_process():
    context = shell("sleep 30")
    threading.Timer(0.3, context.cancel).start()
    began = time.monotonic()
    with pytest.raises(JobCancelled):
        ShellExecutor().execute(context)
    assert time.monotonic() - began < 5


def test_shell_reads_a_downloaded_job_output_as_stdin(tmp_path):
    (tmp_path / "in").write_bytes(b"abc")
    context = RecordingContext({"input": str(tmp_path / "in")}, {"command": "cat"},
                               job={"input_values": {"input": {"value": 7, "type": "JobOutput<BLOB>"}}})
    ShellExecutor().execute(context)
    assert context.outputs[("output", "BLOB")] == b"abc"


def test_shell_needs_a_command():
    with pytest.raises(ExecutionError, match="'command'"):
        ShellExecutor().execute(shell(""))


def counted(path, **parameters):
    context = RecordingContext({"input": str(path)}, {"lowercase": True, "top": 10, **parameters},
                               job={"input_values": {"input": {"value": 3, "type": "JobOutput<BLOB>"}}})
    WordCounter().execute(context)
    return context, json.loads(context.outputs[("output", "JSON")])


def test_word_counter_counts_and_ranks(tmp_path):
    (tmp_path / "text").write_text("The cat and the dog.\nA cat's life; the end\n")
    context, result = counted(tmp_path / "text", top=3)
    assert result == {"total": 10, "top": [["the", 3], ["a", 1], ["and", 1]]}
    assert context.progress_reports[-1] == (1.0, {})


def test_word_counter_can_respect_case(tmp_path):
    (tmp_path / "text").write_text("Word word WORD word")
    _, result = counted(tmp_path / "text", lowercase=False, top=2)
    assert result == {"total": 4, "top": [["word", 2], ["WORD", 1]]}


def test_word_counter_reports_progress_by_tenths(tmp_path):
    (tmp_path / "text").write_text("one two three\n" * 1000)
    context, result = counted(tmp_path / "text")
    assert result["total"] == 3000
    fractions = [fraction for fraction, _ in context.progress_reports]
    assert fractions == sorted(fractions) and 10 <= len(fractions) <= 13
    assert all(0 <= fraction <= 1 for fraction in fractions)


def test_word_counter_stops_when_cancelled(tmp_path):
    (tmp_path / "text").write_text("word\n" * 5000)
    context = RecordingContext({"input": str(tmp_path / "text")}, {},
                               job={"input_values": {"input": {"value": 3, "type": "JobOutput<BLOB>"}}})
    context.cancel()
    with pytest.raises(JobCancelled):
        WordCounter().execute(context)
    assert context.outputs == {}


def test_word_counter_counts_text_inputs_too():
    context = RecordingContext({"input": "a b a"}, {"top": 1})
    WordCounter().execute(context)
    assert json.loads(context.outputs[("output", "JSON")]) == {"total": 3, "top": [["a", 2]]}
