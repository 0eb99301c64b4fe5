"""Pure parts of the process node: env resolution, $(VAR) expansion, path translation."""

import pytest

from shiftboss.testing.node.env import (
    EnvError,
    command_line,
    container_env,
    expand,
    translate_paths,
)

POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "x"}},
    "spec": {"nodeName": "n1", "serviceAccountName": "sa"},
}


def lookup(kind, name, key):
    data = {("secret", "s"): {"k": "secret-value"}, ("configmap", "c"): {"a": "1", "b": "2"}}
    found = data.get((kind, name))
    if found is None:
        return None
    return found if key == "*" else found.get(key)


def resolve(env=None, env_from=None, base=None):
    container = {"name": "c", "env": env or [], "envFrom": env_from or []}
    return container_env(
        POD, container, base=base or {}, lookup=lookup, pod_ip="127.1.0.2", host_ip="127.0.0.1"
    )


def test_expand_follows_kubernetes_rules():
    env = {"A": "x"}
    assert expand("$(A)-$(B)-$$(A)", env) == "x-$(B)-$(A)"


def test_field_refs_and_key_refs():
    env = resolve(
        [
            {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "L", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "a"}}},
            {"name": "X", "value": "$(N)@$(IP)"},
        ]
    )
    assert env == {
        "N": "p",
        "IP": "127.1.0.2",
        "L": "x",
        "S": "secret-value",
        "C": "1",
        "X": "p@127.1.0.2",
    }


def test_env_from_with_prefix_and_later_env_wins():
    env = resolve(
        [{"name": "CFG_a", "value": "override"}],
        [{"configMapRef": {"name": "c"}, "prefix": "CFG_"}],
    )
    assert env == {"CFG_a": "override", "CFG_b": "2"}


def test_missing_keys_are_errors_unless_optional():
    with pytest.raises(EnvError, match="key 'nope' of secret 's'"):
        resolve([{"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "nope"}}}])
    assert (
        resolve(
            [
                {
                    "name": "S",
                    "valueFrom": {"secretKeyRef": {"name": "s", "key": "nope", "optional": True}},
                }
            ]
        )
        == {}
    )


def test_unsupported_field_path_is_named():
    with pytest.raises(EnvError, match=r"spec\.foo"):
        resolve([{"name": "F", "valueFrom": {"fieldRef": {"fieldPath": "spec.foo"}}}])


def test_command_line_expands_and_requires_a_command():
    assert command_line(
        {"name": "c", "command": ["run", "$(X)"], "args": ["--y=$(Y)"]}, {"X": "1", "Y": "2"}
    ) == ["run", "1", "--y=2"]
    with pytest.raises(EnvError, match=r"container\.command"):
        command_line({"name": "c", "image": "busybox"}, {})


def test_translate_paths_prefers_the_longest_mount():
    mounts = [("/var/run", "/h/run"), ("/var/run/secrets/x", "/h/x")]
    assert translate_paths("/var/run/secrets/x/token", mounts) == "/h/x/token"
    assert translate_paths("/var/run/other", mounts) == "/h/run/other"
    assert translate_paths("/var/runner", mounts) == "/var/runner"
    assert translate_paths("relative", mounts) == "relative"
