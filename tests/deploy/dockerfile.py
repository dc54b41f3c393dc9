"""A small reader of the documented Dockerfile grammar, enough to check our Dockerfiles
without a container tool: parser directives and comments, line continuations with the
default escape character, instruction names of the Dockerfile reference, exec (JSON)
and shell forms, and --flags of COPY/FROM.
"""
import json
import re
import shlex

# Every instruction of the Dockerfile reference.
INSTRUCTIONS = {"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
                "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}


class Instruction:
    def __init__(self, line, name, args):
        self.line, self.name, self.args = line, name, args  # args: the text after the name

    def exec_form(self):
        """The JSON array of an exec-form CMD/ENTRYPOINT/RUN, or None for the shell form."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"line {self.line}: {self.name} exec form must be a JSON array of strings")
        return value

    def flags_and_words(self):
        """(--flag=value dict, remaining shell words) of COPY/ADD/FROM."""
        words = shlex.split(self.args)
        flags = {}
        while words and words[0].startswith("--"):
            key, _, value = words.pop(0)[2:].partition("=")
            flags[key] = value
        return flags, words


def parse(text):
    """Instructions of a Dockerfile, in order. Raises ValueError on what the grammar rejects."""
    lines = text.split("\n")
    out = []
    i = 0
    # Parser directives (# key=value) may only open the file; this reader supports none
    # that change the grammar (escape=`).
    while i < len(lines) and re.match(r"#\s*(\w+)\s*=", lines[i]):
        key = re.match(r"#\s*(\w+)\s*=", lines[i]).group(1).lower()
        if key == "escape":
            raise ValueError("line %d: the escape directive is not supported here" % (i + 1))
        i += 1
    while i < len(lines):
        raw = lines[i]
        start = i + 1
        i += 1
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        logical = raw
        # A trailing backslash continues the instruction; comment and empty lines inside
        # a continuation are dropped.
        while logical.rstrip().endswith("\\"):
            logical = logical.rstrip()[:-1]
            while i < len(lines) and (lines[i].lstrip().startswith("#") or not lines[i].strip()):
                i += 1
            if i >= len(lines):
                raise ValueError(f"line {start}: a continuation runs past the end of the file")
            logical += " " + lines[i].strip()
            i += 1
        m = re.match(r"\s*([A-Za-z]+)(\s+(.*))?$", logical)
        if not m:
            raise ValueError(f"line {start}: not an instruction: {raw.strip()!r}")
        name = m.group(1).upper()
        if name not in INSTRUCTIONS:
            raise ValueError(f"line {start}: unknown instruction {m.group(1)!r}")
        args = (m.group(3) or "").strip()
        if not args:
            raise ValueError(f"line {start}: {name} without arguments")
        out.append(Instruction(start, name, args))
    if not out:
        raise ValueError("no instructions")
    first = next((ins for ins in out if ins.name != "ARG"), None)
    if first is None or first.name != "FROM":
        raise ValueError("the first instruction after global ARGs must be FROM")
    return out


def stages(instructions):
    """[(name or None, [instructions of the stage])], FROM first in each."""
    result = []
    for ins in instructions:
        if ins.name == "FROM":
            flags, words = ins.flags_and_words()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            if len(words) not in (1, 3):
                raise ValueError(f"line {ins.line}: FROM IMAGE [AS NAME], not {ins.args!r}")
            result.append((name, [ins]))
        elif result:
            result[-1][1].append(ins)
    return result
