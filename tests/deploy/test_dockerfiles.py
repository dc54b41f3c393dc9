"""examples/deploy/Dockerfile.{cpu,gpu} read with the Dockerfile grammar (no container tool
runs here): instructions, continuations, every COPY source and every repository path a RUN
uses present in the repository and copied before use, stage references, and the server's
command line accepted by the server's own parser.

PETMATTE_SERVER: the built petmatte-server (ctest sets it).
"""
import functools
import os
import re
import shlex
import shutil
import subprocess

import pytest

import dockerfile
from server_harness import harness

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "examples", "deploy")
DOCKERFILES = ["Dockerfile.cpu", "Dockerfile.gpu"]
INSTALLED_SERVER = "/opt/petmatte/bin/petmatte-server"
INSTALLED_STATIC = "/opt/petmatte/share/petmatte/static"
INSTALLED_MODEL = "/opt/petmatte/share/petmatte/models/isnet-general.pt"
# Top-level folders of the repository a RUN may name (scripts/install-deps.sh, tools/...).
REPO_PATH = re.compile(r"(?<![\w/$.-])((?:scripts|tools|examples|lib|shim|include|cmake|tests|bindings|models)"
                       r"/[\w./-]*[\w-])")


def read(name):
    with open(os.path.join(DEPLOY, name)) as f:
        return dockerfile.parse(f.read())


@functools.lru_cache(maxsize=None)
def server_help():
    return subprocess.run([harness.server_exe(), "--help"], capture_output=True, text=True, check=True).stdout


def assert_server_accepts(args):
    """Every --flag is one --help lists, and the server's parser accepts flags and values:
    with --help last, it parses everything before it and exits 0, or exits 2 on a bad one."""
    listed = set(re.findall(r"^\s+(--[a-z-]+)", server_help(), re.M))
    listed |= {"--version"}
    for a in args:
        if a.startswith("--"):
            assert a.split("=", 1)[0] in listed, f"{a} is not a flag of petmatte-server ({sorted(listed)})"
    r = subprocess.run([harness.server_exe(), *args, "--help"], capture_output=True, text=True)
    assert r.returncode == 0, f"petmatte-server rejects {args}: {r.stderr}"


def server_command(instructions):
    ep = [i for i in instructions if i.name == "ENTRYPOINT"]
    cmd = [i for i in instructions if i.name == "CMD"]
    assert ep and cmd, "an ENTRYPOINT and a CMD in the final stage"
    return ep[-1].exec_form(), cmd[-1].exec_form()


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_uses_only_reference_instructions_in_stages(name):
    ins = read(name)
    st = dockerfile.stages(ins)
    assert len(st) == 2, "a build stage and a run stage"
    assert st[0][0] == "build" and st[1][0] is None
    names = [s[0] for s in st if s[0]]
    assert len(names) == len(set(names))
    for k, (_, body) in enumerate(st):
        for i in body:
            if i.name == "COPY":
                flags, _ = i.flags_and_words()
                if "from" in flags:
                    assert flags["from"] in [s[0] for s in st[:k]], f"line {i.line}: COPY --from an earlier stage"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_every_copy_source_and_run_path_exists_and_is_copied_first(name):
    for _, body in dockerfile.stages(read(name)):
        copied = []
        for i in body:
            if i.name in ("COPY", "ADD"):
                flags, words = i.flags_and_words()
                assert len(words) >= 2, f"line {i.line}: COPY SRC... DEST"
                if "from" in flags:
                    continue
                assert i.name == "COPY", f"line {i.line}: ADD fetches or unpacks; COPY is what is meant"
                for src in words[:-1]:
                    assert not os.path.isabs(src) and ".." not in src.split("/"), f"line {i.line}: {src}"
                    assert os.path.exists(os.path.join(ROOT, src)), f"line {i.line}: COPY source {src} not in the repo"
                    copied.append(src.rstrip("/"))
            elif i.name == "RUN":
                for path in REPO_PATH.findall(i.args):
                    assert os.path.exists(os.path.join(ROOT, path)), f"line {i.line}: RUN uses {path}, not in the repo"
                    assert any(path == c or path.startswith(c + "/") for c in copied), \
                        f"line {i.line}: RUN uses {path} before a COPY brings it in"


def top_level_subdirectories():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        return re.findall(r"add_subdirectory\((\w+)", f.read())


@pytest.mark.parametrize("name", DOCKERFILES)
def test_build_stage_copies_what_cmake_configures_and_installs_the_server(name):
    build = dockerfile.stages(read(name))[0][1]
    copied = {w.rstrip("/") for i in build if i.name == "COPY" for w in i.flags_and_words()[1][:-1]}
    run = " ".join(i.args for i in build if i.name == "RUN")
    assert "-DPETMATTE_BUILD_TESTS=OFF" in run
    needed = {"CMakeLists.txt", "cmake", "include"} | {d for d in top_level_subdirectories() if d != "tests"}
    assert needed <= copied, f"not copied: {sorted(needed - copied)}"
    assert "-DCMAKE_INSTALL_PREFIX=/opt/petmatte" in run and "cmake --install build" in run
    with open(os.path.join(ROOT, "examples", "server", "CMakeLists.txt")) as f:
        server_cmake = f.read()
    assert "install(TARGETS petmatte_server" in server_cmake
    assert "DESTINATION ${CMAKE_INSTALL_DATADIR}/petmatte/static" in server_cmake
    # The default model is made at build time, where the run stage's PETMATTE_MODEL says.
    assert f"tools/setup_default_model.py --out {INSTALLED_MODEL}" in run


@pytest.mark.parametrize("name", DOCKERFILES)
def test_run_stage_starts_the_installed_server_with_flags_it_accepts(name):
    final = dockerfile.stages(read(name))[-1][1]
    entry, cmd = server_command(final)
    assert entry == [INSTALLED_SERVER]
    assert_server_accepts(cmd)
    flags = dict(zip(cmd, cmd[1:]))
    assert flags["--host"] == "0.0.0.0"
    assert flags["--static-dir"] == INSTALLED_STATIC
    assert flags["--device"] == ("cpu" if name.endswith(".cpu") else "cuda:0")
    assert "--warmup" in cmd, "warm on start, so readiness follows"
    exposed = [i.args.split() for i in final if i.name == "EXPOSE"]
    assert exposed == [[flags["--port"]]]
    env = " ".join(i.args for i in final if i.name == "ENV")
    assert f"PETMATTE_MODEL={INSTALLED_MODEL}" in env
    assert any(i.name == "USER" and not i.args.startswith("0") for i in final), "not root"


def debian_12():
    try:
        with open("/etc/debian_version") as f:
            return f.read().startswith("12")
    except OSError:
        return False


def apt_install_packages(instructions):
    pkgs = []
    for i in instructions:
        if i.name == "RUN" and "apt-get install" in i.args:
            words = shlex.split(i.args.split("apt-get install", 1)[1].split("&&")[0])
            pkgs += [w for w in words if not w.startswith("-")]
    return pkgs


def needed_sonames(path):
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def test_cpu_run_stage_installs_the_debian_packages_of_every_linked_library():
    if not debian_12() or not shutil.which("dpkg") or not shutil.which("readelf"):
        pytest.skip("needs Debian 12 with dpkg and readelf (the CPU image's base)")
    final = dockerfile.stages(read("Dockerfile.cpu"))[-1][1]
    pkgs = set(apt_install_packages(final))
    shown = subprocess.run(["apt-cache", "show", "--no-all-versions", *sorted(pkgs)], capture_output=True,
                           text=True).stdout
    known = set(re.findall(r"^Package: (\S+)", shown, re.M))
    assert pkgs <= known, f"not Debian 12 packages: {sorted(pkgs - known)}"
    server = harness.server_exe()
    library = os.environ.get("PETMATTE_LIBRARY") or os.path.join(os.path.dirname(os.path.dirname(server)), "lib",
                                                                  "libpetmatte.so")
    if not os.path.exists(library):
        pytest.skip(f"{library} not built (set PETMATTE_LIBRARY)")
    base = {"libc6", "libgcc-s1", "libstdc++6"}  # in debian:12-slim already
    sonames = {s for b in (server, library) for s in needed_sonames(b) if not s.startswith("libpetmatte")}
    found = subprocess.run(["dpkg", "-S", *("*/" + s for s in sorted(sonames))], capture_output=True, text=True).stdout
    owners = {}
    for line in found.splitlines():
        pkg, _, path = line.partition(": ")
        owners.setdefault(os.path.basename(path), set()).update(p.split(":")[0] for p in pkg.split(", "))
    for soname in sorted(sonames):
        assert owners.get(soname), f"no Debian package holds {soname} here"
        assert owners[soname] & (pkgs | base), f"{soname} ({sorted(owners[soname])}) is not installed"
