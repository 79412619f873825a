"""RBAC of the fake API server: service-account tokens authorised by the Roles and RoleBindings in its store.

The server's own token (``FakeKubernetes.token``) keeps full access, so every existing client works unchanged.
A token from ``FakeKubernetes.service_account_token(namespace, name)`` authenticates as
``system:serviceaccount:<namespace>:<name>``; each of its requests is allowed only when a RoleBinding in the
request's namespace binds that service account to a Role (same namespace) with a rule matching the request's
API group, resource (``pods/log``, ``inferenceservices/status`` for subresources), verb and, when the rule lists
``resourceNames``, the object's name. Cluster-scoped requests (lists across namespaces) need a
ClusterRoleBinding to a ClusterRole. Anything else answers ``403 Forbidden`` with the API server's message.
Verbs are derived as the API server does: GET on an object ``get``, on a collection ``list`` (``watch`` with
``watch=true``), POST ``create``, PUT ``update``, PATCH ``patch``, DELETE ``delete`` (``deletecollection`` on a
collection).
"""

from __future__ import annotations

from tests.fake_k8s.store import ObjectStore

RBAC_GROUP = "rbac.authorization.k8s.io"


def request_verb(method: str, name: str | None, watch: bool) -> str:
    """The RBAC verb of an HTTP request."""
    if method == "GET":
        return "get" if name else ("watch" if watch else "list")
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def _matches(values: list[str] | None, value: str) -> bool:
    return bool(values) and ("*" in values or value in values)  # type: ignore[operator]


def _rule_allows(rule: dict, group: str, resource: str, verb: str, name: str | None) -> bool:
    if not (
        _matches(rule.get("apiGroups"), group)
        and _matches(rule.get("resources"), resource)
        and _matches(rule.get("verbs"), verb)
    ):
        return False
    names = rule.get("resourceNames")
    return not names or (name is not None and name in names)


def _bound(binding: dict, sa_namespace: str, sa_name: str) -> bool:
    return any(
        s.get("kind") == "ServiceAccount" and s.get("name") == sa_name and s.get("namespace", "") == sa_namespace
        for s in binding.get("subjects") or []
    )


def is_allowed(
    store: ObjectStore,
    service_account: tuple[str, str],
    *,
    verb: str,
    group: str,
    resource: str,
    namespace: str | None,
    name: str | None,
) -> bool:
    """Whether ``service_account`` (``(namespace, name)``) may ``verb`` the resource (call under ``store.lock``)."""
    sa_namespace, sa_name = service_account
    rules: list[dict] = []
    for (_, _), binding in store.collection(RBAC_GROUP, "clusterrolebindings").items():
        ref = binding.get("roleRef") or {}
        if ref.get("kind") == "ClusterRole" and _bound(binding, sa_namespace, sa_name):
            role = store.collection(RBAC_GROUP, "clusterroles").get(("", ref.get("name")))
            rules.extend((role or {}).get("rules") or [])
    if namespace is not None:
        for (ns, _), binding in store.collection(RBAC_GROUP, "rolebindings").items():
            ref = binding.get("roleRef") or {}
            if ns != namespace or not _bound(binding, sa_namespace, sa_name):
                continue
            if ref.get("kind") == "Role":
                role = store.collection(RBAC_GROUP, "roles").get((namespace, ref.get("name")))
            else:
                role = store.collection(RBAC_GROUP, "clusterroles").get(("", ref.get("name")))
            rules.extend((role or {}).get("rules") or [])
    return any(_rule_allows(rule, group, resource, verb, name) for rule in rules)


def forbidden_message(
    service_account: tuple[str, str], *, verb: str, group: str, resource: str, namespace: str | None, name: str | None
) -> str:
    """The API server's message for a denied request."""
    user = f"system:serviceaccount:{service_account[0]}:{service_account[1]}"
    what = f"{resource}{'.' + group if group else ''}"
    subject = f'{what} "{name}"' if name else what
    scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    return (
        f'{subject} is forbidden: User "{user}" cannot {verb} resource "{resource.split("/")[0]}" '
        f'in API group "{group}"{scope}'
    )
