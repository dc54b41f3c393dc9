"""The Dockerfile reader the deployment checks rely on: what it accepts and rejects."""
import pytest

import dockerfile


def test_continuations_join_and_drop_comment_lines_inside():
    ins = dockerfile.parse("# syntax=docker/dockerfile:1\nFROM debian:12 AS build\n"
                           "RUN apt-get update \\\n# a comment inside\n\n && echo done\n"
                           'CMD ["--port", "8080"]\n')
    assert [i.name for i in ins] == ["FROM", "RUN", "CMD"]
    assert ins[1].args == "apt-get update  && echo done"
    assert ins[1].line == 3
    assert ins[2].exec_form() == ["--port", "8080"]


def test_lowercase_instructions_are_instructions():
    assert [i.name for i in dockerfile.parse("from debian:12\nrun true\n")] == ["FROM", "RUN"]


@pytest.mark.parametrize("text, says", [
    ("FROM debian:12\nRUNN true\n", "unknown instruction"),
    ("FROM debian:12\nRUN true \\\n", "past the end"),
    ("RUN true\nFROM debian:12\n", "must be FROM"),
    ("FROM debian:12\nUSER\n", "without arguments"),
    ("# escape=`\nFROM debian:12\n", "escape directive"),
])
def test_what_the_grammar_rejects(text, says):
    with pytest.raises(ValueError, match=says):
        dockerfile.parse(text)


def test_exec_form_must_be_an_array_of_strings():
    ins = dockerfile.parse('FROM debian:12\nCMD ["--port", 8080]\n')
    with pytest.raises(ValueError, match="JSON array of strings"):
        ins[1].exec_form()
    assert dockerfile.parse("FROM debian:12\nCMD echo hi\n")[1].exec_form() is None


def test_stages_and_copy_flags():
    ins = dockerfile.parse("ARG V=1\nFROM a:${V} AS build\nCOPY x y\nFROM b\nCOPY --from=build /o /o\n")
    st = dockerfile.stages(ins)
    assert [name for name, _ in st] == ["build", None]
    flags, words = st[1][1][1].flags_and_words()
    assert flags == {"from": "build"} and words == ["/o", "/o"]
