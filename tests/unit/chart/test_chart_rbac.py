"""The chart's RBAC, exactly: every rule per scope (a new or wider rule fails here and
must be justified in the template and in docs/install.md's table)."""

from __future__ import annotations

from typing import Any

from chart_render import NAMESPACE, Rendered, render

Rule = tuple[str, str, tuple[str, ...], tuple[str, ...]]  # group, resource, names, verbs


def rules_of(role: dict[str, Any]) -> set[Rule]:
    return {
        (group, resource, tuple(rule.get("resourceNames") or ()), tuple(sorted(rule["verbs"])))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def grants(rendered: Rendered) -> dict[tuple[str, str | None, str], set[Rule]]:
    """(kind, namespace, name) of each Role and ClusterRole -> its rules."""
    return {
        (role["kind"], role["metadata"].get("namespace"), role["metadata"]["name"]): rules_of(role)
        for kind in ("Role", "ClusterRole")
        for role in rendered.of_kind(kind)
    }


def verbs(*names: str) -> tuple[str, ...]:
    return tuple(sorted(names))


SERVED: set[Rule] = {
    ("shiftboss.io", "workerpools", (), verbs("list", "watch")),
    ("shiftboss.io", "workerpools/status", (), verbs("patch")),
    ("shiftboss.io", "jobs", (), verbs("get", "list", "watch", "delete", "create", "patch")),
    ("shiftboss.io", "jobs/status", (), verbs("patch")),
    ("", "pods", (), verbs("get", "list", "watch", "create", "delete")),
    ("", "events", (), verbs("get", "create", "patch")),
}


def claim(lease: str) -> set[Rule]:
    return {
        ("coordination.k8s.io", "leases", (), verbs("create")),
        ("coordination.k8s.io", "leases", (lease,), verbs("get", "patch")),
    }


LEADER = claim("shiftboss-operator") | {("", "pods", (), verbs("get", "patch"))}
REVIEWS = {
    ("authentication.k8s.io", "tokenreviews", (), verbs("create")),
    ("authorization.k8s.io", "subjectaccessreviews", (), verbs("create")),
}
GLOBAL = f"{NAMESPACE}-shiftboss"


def test_cluster_scope():
    assert grants(render()) == {
        ("ClusterRole", None, GLOBAL): SERVED
        | {("coordination.k8s.io", "leases", ("shiftboss-shard",), verbs("get", "list"))},
        ("ClusterRole", None, f"{GLOBAL}-reviews"): REVIEWS,
        ("Role", "default", f"{GLOBAL}-shard"): claim("shiftboss-all-namespaces"),
        ("Role", NAMESPACE, "shiftboss-leader"): LEADER,
    }


def test_namespaced_scope_grants_cluster_wide_only_the_reviews():
    rendered = render(**{"rbac.scope": "namespaced", "watchNamespaces": ["team-a", "team-b"]})
    assert grants(rendered) == {
        ("Role", "team-a", "shiftboss"): SERVED | claim("shiftboss-shard"),
        ("Role", "team-b", "shiftboss"): SERVED | claim("shiftboss-shard"),
        ("Role", "default", f"{GLOBAL}-shard-check"): {
            ("coordination.k8s.io", "leases", ("shiftboss-all-namespaces",), verbs("get"))
        },
        ("Role", NAMESPACE, "shiftboss-leader"): LEADER,
        ("ClusterRole", None, f"{GLOBAL}-reviews"): REVIEWS,
    }


def test_every_role_is_bound_to_the_operator_account_only():
    """And so worker pods, which run under their pool's service account (default:
    "default"), get no API rights from the chart."""
    for values in ({}, {"rbac.scope": "namespaced", "watchNamespaces": ["team-a"]}):
        rendered = render(**values)
        roles = {
            (role["kind"], role["metadata"].get("namespace"), role["metadata"]["name"])
            for kind in ("Role", "ClusterRole")
            for role in rendered.of_kind(kind)
        }
        bound = set()
        for kind in ("RoleBinding", "ClusterRoleBinding"):
            for binding in rendered.of_kind(kind):
                ref = binding["roleRef"]
                bound.add((ref["kind"], binding["metadata"].get("namespace"), ref["name"]))
                assert binding["subjects"] == [
                    {"kind": "ServiceAccount", "name": "shiftboss", "namespace": NAMESPACE}
                ]
        assert bound == roles


def test_no_rbac_when_not_created():
    rendered = render(**{"rbac.create": False})
    assert not {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} & set(rendered.kinds())
