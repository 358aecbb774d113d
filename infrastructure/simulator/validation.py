"""Decoding checks (400) and object validation (422) of the simulated API server.

Interface used by the server (owned by the validation work; the server only calls these):
- ``decode(group, version, kind, body, strict) -> list[str]``: raise ``APIError`` 400 like the real
  decoder for wrong types / unparsable quantities / (strict) unknown fields; return warnings
  (``unknown field "spec.foo"``) for unknown fields when not strict.
- ``validate(group, version, kind, obj, old=None) -> None``: raise ``errors.invalid`` (422) with
  causes; ``old`` is the stored object on update (immutable fields).

Decoding walks the official OpenAPI schemas of the simulated Kubernetes version (shipped by
kubernetes-validate), so unknown fields and wrong types are found exactly where the real decoder
finds them. Validation re-implements the subset of the real validation the product can trip
over, with the real field paths, cause types and messages.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import ipaddress
import json
import re
from collections.abc import Callable
from functools import cache
from importlib import resources as importlib_resources
from typing import Any

from . import errors
from .errors import APIError, Cause
from .quantity import Quantity, QuantityError, parse_quantity
from .version import version_info

# ---------------------------------------------------------------------------------------------
# Decoding (400 BadRequest)
# ---------------------------------------------------------------------------------------------

_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_TIME = "io.k8s.apimachinery.pkg.apis.meta.v1.Time"
_MICRO_TIME = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime"
_RFC3339 = "2006-01-02T15:04:05Z07:00"


@cache
def _definitions() -> dict[str, dict[str, Any]]:
    """The strict schema definitions of the simulated version, loaded once per process."""
    schema_dir = f"v1.{version_info()['minor']}.0-local-strict"
    path = importlib_resources.files("kubernetes_validate") / "kubernetes-json-schema" / schema_dir
    return json.loads((path / "_definitions.json").read_text())["$defs"]


@cache
def _definition_for(group: str, version: str, kind: str) -> str | None:
    for name, definition in _definitions().items():
        for gvk in definition.get("x-kubernetes-group-version-kind", ()):
            if (gvk["group"], gvk["version"], gvk["kind"]) == (group, version, kind):
                return name
    return None


def _ref_name(node: dict[str, Any]) -> str | None:
    ref = node.get("$ref")
    return ref.rsplit("/", 1)[-1] if ref else None


def _types(node: dict[str, Any]) -> tuple[str, ...]:
    kind = node.get("type", ())
    return (kind,) if isinstance(kind, str) else tuple(t for t in kind if t != "null")


def _go_type(node: dict[str, Any]) -> str:
    """The Go type name the real decoder would print for a schema node (e.g. ``[]v1.Container``)."""
    ref = _ref_name(node)
    if ref == _QUANTITY:
        return "resource.Quantity"
    if ref == _INT_OR_STRING:
        return "intstr.IntOrString"
    if ref:
        parts = ref.split(".")
        return f"{parts[-2]}.{parts[-1]}"
    kinds = _types(node)
    if "array" in kinds:
        return "[]" + _go_type(node.get("items", {}))
    if "object" in kinds:
        return "map[string]" + _go_type(node.get("additionalProperties") or {})
    if "integer" in kinds:
        return {"int32": "int32", "int64": "int64"}.get(node.get("format", ""), "int")
    if node.get("format") == "byte":
        return "[]uint8"
    return {"string": "string", "number": "float64", "boolean": "bool"}.get(
        kinds[0] if kinds else "", "string"
    )


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


class _Decoder:
    """One walk of a body against its schema: raises on the first type error, collects unknown fields."""

    def __init__(self) -> None:
        self.unknown: list[str] = []
        self.defs = _definitions()

    def type_error(
        self, value: Any, struct: str, field: str, node: dict[str, Any], literal: bool = False
    ) -> None:
        shown = f"number {value!r}" if literal else _json_kind(value)
        target = f"Go struct field {struct}.{field}" if struct else "Go value"
        raise _DecodeError(f"json: cannot unmarshal {shown} into {target} of type {_go_type(node)}")

    def walk(self, value: Any, node: dict[str, Any], path: str, struct: str, field: str) -> None:
        """``path`` names the value for unknown fields (with indexes); struct/field for type errors."""
        if value is None:
            return
        ref = _ref_name(node)
        if ref == _QUANTITY:
            self.quantity(value)
            return
        if ref == _INT_OR_STRING:
            self.int_or_string(value)
            return
        if ref in (_TIME, _MICRO_TIME):
            self.time(value)
            return
        if ref:
            self.struct(value, self.defs[ref], ref.rsplit(".", 1)[-1], node, path, struct, field)
            return
        kinds = _types(node)
        if "object" in kinds and "properties" in node:
            self.struct(value, node, struct, node, path, struct, field)
        elif "object" in kinds:
            if not isinstance(value, dict):
                self.type_error(value, struct, field, node)
            items = node.get("additionalProperties")
            if isinstance(items, dict):
                for key, item in value.items():
                    self.walk(item, items, f"{path}[{key}]", struct, field)
        elif "array" in kinds:
            if not isinstance(value, list):
                self.type_error(value, struct, field, node)
            for index, item in enumerate(value):
                self.walk(item, node.get("items", {}), f"{path}[{index}]", struct, field)
        elif kinds:
            self.scalar(value, kinds[0], node, struct, field)

    def struct(
        self,
        value: Any,
        definition: dict[str, Any],
        name: str,
        node: dict[str, Any],
        path: str,
        struct: str,
        field: str,
    ) -> None:
        if "properties" not in definition:
            if _types(definition) == ("string",):
                self.scalar(value, "string", definition, struct, field)
            elif "object" in _types(definition) and not isinstance(value, dict):
                self.type_error(value, struct, field, node)
            return
        if not isinstance(value, dict):
            self.type_error(value, struct, field, node)
        properties = definition["properties"]
        for key, item in value.items():
            child_path = f"{path}.{key}" if path else key
            child = properties.get(key)
            if child is None:
                if definition.get("additionalProperties") is False:
                    self.unknown.append(child_path)
                continue
            child_field = f"{field}.{key}" if field else key
            self.walk(item, child, child_path, name, child_field)

    def scalar(self, value: Any, kind: str, node: dict[str, Any], struct: str, field: str) -> None:
        if kind == "string":
            if not isinstance(value, str):
                self.type_error(value, struct, field, node)
            if node.get("format") == "byte":
                _check_base64(value)
        elif kind == "boolean":
            if not isinstance(value, bool):
                self.type_error(value, struct, field, node)
        elif kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.type_error(value, struct, field, node)
            bits = 32 if node.get("format") == "int32" else 64
            if isinstance(value, float) or not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
                self.type_error(value, struct, field, node, literal=True)
        elif kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
            self.type_error(value, struct, field, node)

    def quantity(self, value: Any) -> None:
        if isinstance(value, dict | list):
            raise _DecodeError(
                f"json: cannot unmarshal {_json_kind(value)} into Go value of type string"
                if isinstance(value, list)
                else "quantities must be a string or a number"
            )
        try:
            parse_quantity(value)
        except QuantityError as exc:
            raise _DecodeError(str(exc)) from None

    def int_or_string(self, value: Any) -> None:
        if isinstance(value, str):
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _DecodeError(f"json: cannot unmarshal {_json_kind(value)} into Go value of type int32")
        if isinstance(value, float) or not -(2**31) <= value < 2**31:
            raise _DecodeError(f"json: cannot unmarshal number {value!r} into Go value of type int32")

    def time(self, value: Any) -> None:
        if not isinstance(value, str):
            raise _DecodeError(f"json: cannot unmarshal {_json_kind(value)} into Go value of type string")
        if value and _parse_time(value) is None:
            raise _DecodeError(f'parsing time "{value}" as "{_RFC3339}": cannot parse "{value}" as "2006"')


_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _parse_time(value: str) -> datetime.datetime | None:
    if not _TIME_RE.match(value):
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


_BASE64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _check_base64(value: str) -> None:
    """Go's StdEncoding: padded base64, error names the first offending byte."""
    stripped = value.rstrip("=")
    for index, char in enumerate(stripped):
        if char not in _BASE64_ALPHABET:
            raise _DecodeError(f"illegal base64 data at input byte {index}")
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error:
        raise _DecodeError(f"illegal base64 data at input byte {len(value) - len(value) % 4}") from None


class _DecodeError(Exception):
    pass


def decode(group: str, version: str, kind: str, body: dict[str, Any], strict: bool) -> list[str]:
    """Check a request body as the real decoder would; return the unknown-field warnings."""
    prefix = f'{kind} in version "{version}" cannot be handled as a {kind}: '
    definition = _definition_for(group, version, kind)
    if definition is None:
        return []
    if not isinstance(body, dict):
        raise errors.bad_request(
            f"{prefix}json: cannot unmarshal {_json_kind(body)} into Go value of type {version}.{kind}"
        )
    decoder = _Decoder()
    try:
        decoder.struct(body, decoder.defs[definition], kind, {"$ref": definition}, "", "", "")
    except _DecodeError as exc:
        raise errors.bad_request(prefix + str(exc)) from None
    warnings = [f'unknown field "{path}"' for path in decoder.unknown]
    if strict and warnings:
        raise errors.bad_request(prefix + "strict decoding error: " + ", ".join(warnings))
    return warnings


# ---------------------------------------------------------------------------------------------
# Validation (422 Invalid)
# ---------------------------------------------------------------------------------------------

_DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = _DNS1123_LABEL + r"(\." + _DNS1123_LABEL + ")*"
_DNS1035_LABEL = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = "(" + _QUALIFIED_NAME + ")?"
_CONFIG_KEY = "[-._a-zA-Z0-9]+"


def _full(pattern: str) -> re.Pattern[str]:
    return re.compile(f"^(?:{pattern})$")


_RE_LABEL = _full(_DNS1123_LABEL)
_RE_SUBDOMAIN = _full(_DNS1123_SUBDOMAIN)
_RE_DNS1035 = _full(_DNS1035_LABEL)
_RE_QUALIFIED = _full(_QUALIFIED_NAME)
_RE_LABEL_VALUE = _full(_LABEL_VALUE)
_RE_CONFIG_KEY = _full(_CONFIG_KEY)
_RE_PORT_NAME_CHARS = re.compile(r"^[-a-z0-9]+$")
_RE_HAS_LETTER = re.compile("[a-z]")

IMMUTABLE = "field is immutable"


def _regex_error(message: str, pattern: str, *examples: str) -> str:
    """The real ``validation.RegexError`` wording (including its double spaces between examples)."""
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{pattern}')"


def _max_len(length: int) -> str:
    return f"must be no more than {length} characters"


def dns1123_label_errors(value: str) -> list[str]:
    out = [_max_len(63)] if len(value) > 63 else []
    if not _RE_LABEL.match(value):
        out.append(
            _regex_error(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
                "must start and end with an alphanumeric character",
                _DNS1123_LABEL,
                "my-name",
                "123-abc",
            )
        )
    return out


def dns1123_subdomain_errors(value: str) -> list[str]:
    out = [_max_len(253)] if len(value) > 253 else []
    if not _RE_SUBDOMAIN.match(value):
        out.append(
            _regex_error(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                "'.', and must start and end with an alphanumeric character",
                _DNS1123_SUBDOMAIN,
                "example.com",
            )
        )
    return out


def dns1035_label_errors(value: str) -> list[str]:
    out = [_max_len(63)] if len(value) > 63 else []
    if not _RE_DNS1035.match(value):
        out.append(
            _regex_error(
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character",
                _DNS1035_LABEL,
                "my-name",
                "abc-123",
            )
        )
    return out


def path_segment_errors(value: str) -> list[str]:
    """RBAC object names: anything that is a valid URL path segment."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{char}'" for char in ("/", "%") if char in value]


_QUALIFIED_NAME_ERROR = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
    "character"
)


def qualified_name_errors(value: str) -> list[str]:
    parts = value.split("/")
    out: list[str] = []
    if len(parts) > 2:
        return [
            "a qualified name "
            + _regex_error(_QUALIFIED_NAME_ERROR, _QUALIFIED_NAME, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    name = parts[-1]
    if len(parts) == 2:
        if not parts[0]:
            out.append("prefix part must be non-empty")
        else:
            out.extend("prefix part " + msg for msg in dns1123_subdomain_errors(parts[0]))
    if not name:
        out.append("name part must be non-empty")
    elif len(name) > 63:
        out.append("name part " + _max_len(63))
    if not _RE_QUALIFIED.match(name):
        out.append(
            "name part "
            + _regex_error(_QUALIFIED_NAME_ERROR, _QUALIFIED_NAME, "MyName", "my.name", "123-abc")
        )
    return out


def label_value_errors(value: str) -> list[str]:
    out = [_max_len(63)] if len(value) > 63 else []
    if not _RE_LABEL_VALUE.match(value):
        out.append(
            _regex_error(
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
                "'.', and must start and end with an alphanumeric character",
                _LABEL_VALUE,
                "MyValue",
                "my_value",
                "12345",
            )
        )
    return out


def _go_value(value: Any) -> str:
    """How the real ``field.Error`` prints a bad value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "[]string{" + ", ".join(json.dumps(item, ensure_ascii=False) for item in value) + "}"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


class _Errors:
    """Collects causes in the order the real validation reports them."""

    def __init__(self) -> None:
        self.causes: list[Cause] = []

    def _add(self, path: str, reason: str, body: str, detail: str = "") -> None:
        cause = Cause(path, reason, f"{body}: {detail}" if detail else body)
        if cause not in self.causes:
            self.causes.append(cause)

    def required(self, path: str, detail: str = "") -> None:
        self._add(path, "FieldValueRequired", "Required value", detail)

    def invalid(self, path: str, value: Any, detail: str) -> None:
        self._add(path, "FieldValueInvalid", f"Invalid value: {_go_value(value)}", detail)

    def not_supported(self, path: str, value: Any, supported: list[str]) -> None:
        shown = ", ".join(json.dumps(item) for item in supported)
        self._add(
            path,
            "FieldValueNotSupported",
            f"Unsupported value: {_go_value(value)}",
            f"supported values: {shown}",
        )

    def forbidden(self, path: str, detail: str) -> None:
        self._add(path, "FieldValueForbidden", "Forbidden", detail)

    def duplicate(self, path: str, value: Any) -> None:
        self._add(path, "FieldValueDuplicate", f"Duplicate value: {_go_value(value)}")

    def not_found(self, path: str, value: Any) -> None:
        self._add(path, "FieldValueNotFound", f"Not found: {_go_value(value)}")

    def too_long(self, path: str, limit: int) -> None:
        self._add(path, "FieldValueTooLong", "Too long", f"must have at most {limit} bytes")

    def invalid_shown(self, path: str, shown: str, detail: str) -> None:
        """An invalid value the real server prints as a Go struct (``%#v``)."""
        self._add(path, "FieldValueInvalid", f"Invalid value: {shown}", detail)

    def each(self, path: str, value: Any, messages: list[str]) -> None:
        for message in messages:
            self.invalid(path, value, message)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


# --- metadata -------------------------------------------------------------------------------

NameCheck = Callable[[str], list[str]]


def _generate_name_errors(check: NameCheck, value: str) -> list[str]:
    """A generateName is a prefix: its trailing '-' does not count."""
    if len(value) > 1 and value.endswith("-"):
        value = value[:-1]
    return check(value)


def validate_labels(labels: Any, path: str, errs: _Errors) -> None:
    for key, value in _dict(labels).items():
        errs.each(path, key, qualified_name_errors(key))
        errs.each(path, value, label_value_errors(_str(value)))


def _validate_annotations(annotations: Any, path: str, errs: _Errors) -> None:
    total = 0
    for key, value in _dict(annotations).items():
        errs.each(path, key, qualified_name_errors(key.lower()))
        total += len(key) + len(_str(value))
    if total > 256 * 1024:
        errs.too_long(path, 256 * 1024)


def _validate_metadata(meta: dict[str, Any], check: NameCheck, errs: _Errors) -> None:
    name, generate_name = _str(meta.get("name")), _str(meta.get("generateName"))
    if generate_name:
        errs.each("metadata.generateName", generate_name, _generate_name_errors(check, generate_name))
    if not name and not generate_name:
        errs.required("metadata.name", "name or generateName is required")
    elif name:
        errs.each("metadata.name", name, check(name))
    validate_labels(meta.get("labels"), "metadata.labels", errs)
    _validate_annotations(meta.get("annotations"), "metadata.annotations", errs)
    for index, finalizer in enumerate(_list(meta.get("finalizers"))):
        errs.each(f"metadata.finalizers[{index}]", finalizer, qualified_name_errors(_str(finalizer)))
    _validate_owner_references(_list(meta.get("ownerReferences")), errs)


def _validate_owner_references(references: list[Any], errs: _Errors) -> None:
    path = "metadata.ownerReferences"
    controllers = []
    for ref in map(_dict, references):
        api_version = _str(ref.get("apiVersion"))
        if not api_version.rsplit("/", 1)[-1]:
            errs.invalid(f"{path}.apiVersion", api_version, "version must not be empty")
        for key in ("kind", "name", "uid"):
            if not _str(ref.get(key)):
                errs.invalid(f"{path}.{key}", _str(ref.get(key)), "must not be empty")
        if ref.get("controller") is True:
            controllers.append(f"{ref.get('kind')}/{ref.get('name')}")
    if len(controllers) > 1:
        errs.invalid(
            path,
            references,
            'Only one reference can have Controller set to true. Found "true" in references for '
            + " and ".join(controllers),
        )


def _validate_metadata_update(meta: dict[str, Any], old_meta: dict[str, Any], errs: _Errors) -> None:
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        if old_meta.get(key) and meta.get(key) != old_meta.get(key):
            errs.invalid(f"metadata.{key}", meta.get(key), IMMUTABLE)


# --- shared pieces --------------------------------------------------------------------------


def _enum(value: Any, path: str, supported: list[str], errs: _Errors, required: bool = False) -> None:
    if value is None or value == "":
        if required:
            errs.required(path)
        return
    if value not in supported:
        errs.not_supported(path, value, supported)


def _port_number(value: Any, path: str, errs: _Errors, required: bool = True) -> None:
    if value is None or value == 0:
        if required:
            errs.required(path)
        return
    if not isinstance(value, int) or not 1 <= value <= 65535:
        errs.invalid(path, value, "must be between 1 and 65535, inclusive")


def _port_name_errors(name: str) -> list[str]:
    out = [_max_len(15)] if len(name) > 15 else []
    if not _RE_PORT_NAME_CHARS.match(name):
        out.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in name:
        out.append("must not contain consecutive hyphens")
    if not _RE_HAS_LETTER.search(name):
        out.append("must contain at least one letter (a-z)")
    if name.startswith("-") or name.endswith("-"):
        out.append("must not begin or end with a hyphen")
    return out


def _quantity(value: Any) -> Quantity | None:
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


def _validate_label_selector(selector: Any, path: str, errs: _Errors) -> None:
    selector = _dict(selector)
    validate_labels(selector.get("matchLabels"), f"{path}.matchLabels", errs)
    for index, req in enumerate(map(_dict, _list(selector.get("matchExpressions")))):
        req_path = f"{path}.matchExpressions[{index}]"
        operator, values = req.get("operator"), _list(req.get("values"))
        if operator in ("In", "NotIn"):
            if not values:
                errs.required(f"{req_path}.values", "must be specified when `operator` is 'In' or 'NotIn'")
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                errs.forbidden(
                    f"{req_path}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                )
        else:
            errs.invalid(f"{req_path}.operator", operator, "not a valid selector operator")
        errs.each(f"{req_path}.key", req.get("key"), qualified_name_errors(_str(req.get("key"))))


# --- pods -----------------------------------------------------------------------------------

_VOLUME_SOURCES = (
    "emptyDir",
    "hostPath",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "flocker",
    "persistentVolumeClaim",
    "rbd",
    "cinder",
    "cephfs",
    "quobyte",
    "downwardAPI",
    "fc",
    "flexVolume",
    "configMap",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "storageos",
    "projected",
    "scaleIO",
    "csi",
    "ephemeral",
    "image",
)
_HOST_PATH_TYPES = [
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
]
_REQUIRED_SOURCE_FIELDS = {
    "secret": "secretName",
    "configMap": "name",
    "persistentVolumeClaim": "claimName",
    "nfs": "server",
    "csi": "driver",
}
_STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def _validate_volumes(volumes: list[Any], errs: _Errors) -> set[str]:
    names: set[str] = set()
    for index, volume in enumerate(map(_dict, volumes)):
        path = f"spec.volumes[{index}]"
        name = _str(volume.get("name"))
        if not name:
            errs.required(f"{path}.name")
        else:
            errs.each(f"{path}.name", name, dns1123_label_errors(name))
            if name in names:
                errs.duplicate(f"{path}.name", name)
            names.add(name)
        sources = [source for source in _VOLUME_SOURCES if volume.get(source) is not None]
        if not sources:
            errs.required(path, "must specify a volume type")
        for extra in sources[1:]:
            errs.forbidden(f"{path}.{extra}", "may not specify more than 1 volume type")
        if sources:
            _validate_volume_source(sources[0], _dict(volume.get(sources[0])), f"{path}.{sources[0]}", errs)
    return names


def _validate_volume_source(source: str, spec: dict[str, Any], path: str, errs: _Errors) -> None:
    if source == "hostPath":
        host_path = _str(spec.get("path"))
        if not host_path:
            errs.required(f"{path}.path")
        elif ".." in host_path.split("/"):
            errs.invalid(f"{path}.path", host_path, "must not contain '..'")
        _enum(spec.get("type"), f"{path}.type", _HOST_PATH_TYPES, errs)
    elif source in _REQUIRED_SOURCE_FIELDS:
        key = _REQUIRED_SOURCE_FIELDS[source]
        if not _str(spec.get(key)):
            errs.required(f"{path}.{key}")
    elif source == "emptyDir":
        _enum(spec.get("medium"), f"{path}.medium", ["", "Memory", "HugePages"], errs)


def _validate_resources(resources: dict[str, Any], path: str, errs: _Errors) -> None:
    parsed: dict[str, dict[str, Quantity | None]] = {}
    for section in ("limits", "requests"):
        parsed[section] = {}
        for key, value in _dict(resources.get(section)).items():
            key_path = f"{path}.{section}[{key}]"
            if (
                "/" not in key
                and key not in _STANDARD_CONTAINER_RESOURCES
                and not key.startswith("hugepages-")
            ):
                errs.invalid(key_path, key, "must be a standard resource for containers")
            quantity = parsed[section][key] = _quantity(value)
            if quantity is not None and quantity.value < 0:
                errs.invalid(key_path, str(quantity), "must be greater than or equal to 0")
    for key, request in parsed["requests"].items():
        limit = parsed["limits"].get(key)
        if request is not None and limit is not None and request > limit:
            errs.invalid(
                f"{path}.requests", str(request), f"must be less than or equal to {key} limit of {limit}"
            )


def _validate_container(
    container: dict[str, Any], path: str, volumes: set[str], names: set[str], ports: set[str], errs: _Errors
) -> None:
    name = _str(container.get("name"))
    if not name:
        errs.required(f"{path}.name")
    else:
        errs.each(f"{path}.name", name, dns1123_label_errors(name))
        if name in names:
            errs.duplicate(f"{path}.name", name)
        names.add(name)
    if not _str(container.get("image")).strip():
        errs.required(f"{path}.image")
    _enum(
        container.get("imagePullPolicy"), f"{path}.imagePullPolicy", ["Always", "IfNotPresent", "Never"], errs
    )
    _enum(
        container.get("terminationMessagePolicy"),
        f"{path}.terminationMessagePolicy",
        ["File", "FallbackToLogsOnError"],
        errs,
    )
    for index, port in enumerate(map(_dict, _list(container.get("ports")))):
        port_path = f"{path}.ports[{index}]"
        port_name = _str(port.get("name"))
        if port_name:
            errs.each(f"{port_path}.name", port_name, _port_name_errors(port_name))
            if port_name in ports:
                errs.duplicate(f"{port_path}.name", port_name)
            ports.add(port_name)
        _port_number(port.get("containerPort"), f"{port_path}.containerPort", errs)
        _port_number(port.get("hostPort"), f"{port_path}.hostPort", errs, required=False)
        _enum(port.get("protocol"), f"{port_path}.protocol", ["SCTP", "TCP", "UDP"], errs)
    for index, env in enumerate(map(_dict, _list(container.get("env")))):
        env_name = _str(env.get("name"))
        if not env_name:
            errs.required(f"{path}.env[{index}].name")
        elif "=" in env_name or not env_name.isprintable() or not env_name.isascii():
            errs.invalid(
                f"{path}.env[{index}].name",
                env_name,
                "a valid environment variable name must consist only of printable ASCII characters other "
                "than '='",
            )
    mount_paths: set[str] = set()
    for index, mount in enumerate(map(_dict, _list(container.get("volumeMounts")))):
        mount_path = f"{path}.volumeMounts[{index}]"
        mount_name = _str(mount.get("name"))
        if not mount_name:
            errs.required(f"{mount_path}.name")
        elif mount_name not in volumes:
            errs.not_found(f"{mount_path}.name", mount_name)
        target = _str(mount.get("mountPath"))
        if not target:
            errs.required(f"{mount_path}.mountPath")
        elif target in mount_paths:
            errs.invalid(f"{mount_path}.mountPath", target, "must be unique")
        mount_paths.add(target)
    _validate_resources(_dict(container.get("resources")), f"{path}.resources", errs)


def _validate_pod_spec(spec: dict[str, Any], errs: _Errors) -> None:
    volumes = _validate_volumes(_list(spec.get("volumes")), errs)
    names: set[str] = set()
    containers = _list(spec.get("containers"))
    if not containers:
        errs.required("spec.containers")
    for field in ("containers", "initContainers"):
        ports: set[str] = set()
        for index, container in enumerate(map(_dict, _list(spec.get(field)))):
            _validate_container(container, f"spec.{field}[{index}]", volumes, names, ports, errs)
    _enum(spec.get("restartPolicy"), "spec.restartPolicy", ["Always", "OnFailure", "Never"], errs)
    _enum(
        spec.get("dnsPolicy"),
        "spec.dnsPolicy",
        ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
        errs,
    )
    validate_labels(spec.get("nodeSelector"), "spec.nodeSelector", errs)
    for field in ("hostname", "subdomain"):
        value = _str(spec.get(field))
        if value:
            errs.each(f"spec.{field}", value, dns1123_label_errors(value))
    node_name = _str(spec.get("nodeName"))
    if node_name:
        errs.each("spec.nodeName", node_name, dns1123_subdomain_errors(node_name))
    service_account = _str(spec.get("serviceAccountName"))
    if service_account:
        errs.each("spec.serviceAccountName", service_account, dns1123_subdomain_errors(service_account))
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and (not isinstance(deadline, int) or not 1 <= deadline <= 2**31 - 1):
        errs.invalid("spec.activeDeadlineSeconds", deadline, "must be between 1 and 2147483647, inclusive")
    for index, toleration in enumerate(map(_dict, _list(spec.get("tolerations")))):
        path = f"spec.tolerations[{index}]"
        _enum(toleration.get("operator"), f"{path}.operator", ["Equal", "Exists"], errs)
        _enum(
            toleration.get("effect"), f"{path}.effect", ["NoExecute", "NoSchedule", "PreferNoSchedule"], errs
        )
        if toleration.get("operator") == "Exists" and toleration.get("value"):
            errs.invalid(
                f"{path}.operator", toleration.get("value"), "value must be empty when `operator` is 'Exists'"
            )


_UPDATABLE_POD_FIELDS = (
    "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def _changed_paths(old: Any, new: Any, path: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out.extend(_changed_paths(old.get(key), new.get(key), f"{path}.{key}"))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            out.extend(_changed_paths(a, b, f"{path}[{index}]"))
        return out
    return [] if old == new else [path]


def _only_added_tolerations(tolerations: list[Any], old_tolerations: list[Any]) -> bool:
    """Every old toleration is still there (its tolerationSeconds may change)."""

    def key(toleration: Any) -> Any:
        return (
            {k: v for k, v in toleration.items() if k != "tolerationSeconds"}
            if isinstance(toleration, dict)
            else toleration
        )

    remaining = [key(toleration) for toleration in tolerations]
    return all(key(toleration) in remaining for toleration in old_tolerations)


def _validate_pod_update(spec: dict[str, Any], old_spec: dict[str, Any], errs: _Errors) -> None:
    deadline, old_deadline = spec.get("activeDeadlineSeconds"), old_spec.get("activeDeadlineSeconds")
    if deadline is None and old_deadline is not None:
        errs.invalid(
            "spec.activeDeadlineSeconds", None, "must not update from a positive integer to nil value"
        )
    elif isinstance(deadline, int) and isinstance(old_deadline, int) and deadline > old_deadline:
        errs.invalid("spec.activeDeadlineSeconds", deadline, "must be less than or equal to previous value")
    munged = json.loads(json.dumps(spec))
    for field in ("containers", "initContainers"):
        old_containers = _list(old_spec.get(field))
        for index, container in enumerate(_list(munged.get(field))):
            if isinstance(container, dict) and index < len(old_containers):
                container.pop("image", None)
                if "image" in _dict(old_containers[index]):
                    container["image"] = old_containers[index]["image"]
    grace, old_grace = (
        spec.get("terminationGracePeriodSeconds"),
        old_spec.get("terminationGracePeriodSeconds"),
    )
    keys = ["activeDeadlineSeconds", "tolerations"]
    if isinstance(old_grace, int) and old_grace < 0 and grace == 1:
        keys.append("terminationGracePeriodSeconds")
    for key in keys:
        munged.pop(key, None)
        if key in old_spec:
            munged[key] = old_spec[key]
    if not _only_added_tolerations(_list(spec.get("tolerations")), _list(old_spec.get("tolerations"))):
        errs.forbidden(
            "spec.tolerations", "existing toleration can not be modified except its tolerationSeconds"
        )
    if munged != old_spec:
        diff = "\n".join(f"  {path}" for path in _changed_paths(old_spec, munged, "spec"))
        errs.forbidden(
            "spec", f"pod updates may not change fields other than {_UPDATABLE_POD_FIELDS}\n{diff}"
        )


def _pod(obj: dict[str, Any], old: dict[str, Any] | None, errs: _Errors) -> None:
    spec = _dict(obj.get("spec"))
    _validate_pod_spec(spec, errs)
    if old is not None:
        _validate_pod_update(spec, _dict(old.get("spec")), errs)


# --- other core kinds -----------------------------------------------------------------------

_ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]


def _pvc(obj: dict[str, Any], old: dict[str, Any] | None, errs: _Errors) -> None:
    spec = _dict(obj.get("spec"))
    modes = _list(spec.get("accessModes"))
    if not modes:
        errs.required("spec.accessModes", "at least 1 access mode is required")
    for mode in modes:
        if mode not in _ACCESS_MODES:
            errs.not_supported("spec.accessModes", mode, _ACCESS_MODES)
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        errs.forbidden("spec.accessModes", "may not use ReadWriteOncePod with other access modes")
    storage = _dict(_dict(spec.get("resources")).get("requests")).get("storage")
    size = _quantity(storage) if storage is not None else None
    if storage is None:
        errs.required("spec.resources[storage]")
    elif size is not None and size.value <= 0:
        errs.invalid("spec.resources[storage]", str(size), "must be greater than zero")
    _enum(spec.get("volumeMode"), "spec.volumeMode", ["Block", "Filesystem"], errs)
    class_name = spec.get("storageClassName")
    if class_name:
        errs.each("spec.storageClassName", class_name, dns1123_subdomain_errors(_str(class_name)))
    if old is None:
        return
    old_spec = _dict(old.get("spec"))
    old_storage = _dict(_dict(old_spec.get("resources")).get("requests")).get("storage")
    bound = _dict(old.get("status")).get("phase") == "Bound"
    new_clone, old_clone = json.loads(json.dumps(spec)), json.loads(json.dumps(old_spec))
    if bound:
        for clone in (new_clone, old_clone):
            _dict(clone.get("resources")).pop("requests", None)
            clone.pop("volumeAttributesClassName", None)
    if new_clone != old_clone:
        diff = "\n".join(f"  {path}" for path in _changed_paths(old_clone, new_clone, "spec"))
        errs.forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and volumeAttributesClassName "
            f"for bound claims\n{diff}",
        )
    old_size = _quantity(old_storage) if old_storage is not None else None
    if bound and size is not None and old_size is not None and size < old_size:
        errs.forbidden("spec.resources.requests.storage", "field can not be less than previous value")


def _validate_data_keys(data: dict[str, Any], path: str, errs: _Errors) -> None:
    for key in data:
        messages = []
        if len(key) > 253:
            messages.append(_max_len(253))
        if not _RE_CONFIG_KEY.match(key):
            messages.append(
                _regex_error(
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                    _CONFIG_KEY,
                    "key.name",
                    "KEY_NAME",
                    "key-name",
                )
            )
        if key in (".", "..") or key.startswith(".."):
            messages.append(f"must not be '{key}'" if key in (".", "..") else "must not start with '..'")
        errs.each(f"{path}[{key}]", key, messages)


def _decoded_size(value: Any) -> int:
    try:
        return len(base64.b64decode(_str(value), validate=True))
    except ValueError:
        return len(_str(value))


def _secret(obj: dict[str, Any], old: dict[str, Any] | None, errs: _Errors) -> None:
    data = _dict(obj.get("data"))
    _validate_data_keys(data, "data", errs)
    size = sum(_decoded_size(value) for value in data.values())
    if size > 1024 * 1024:
        errs.too_long("data", 1024 * 1024)
    secret_type = _str(obj.get("type")) or "Opaque"
    required_keys = {
        "kubernetes.io/tls": ("tls.crt", "tls.key"),
        "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
        "kubernetes.io/dockercfg": (".dockercfg",),
    }.get(secret_type, ())
    for key in required_keys:
        if key not in data:
            errs.required(f"data[{key}]")
    if old is None:
        return
    if secret_type != (_str(old.get("type")) or "Opaque"):
        errs.invalid("type", secret_type, IMMUTABLE)
    if old.get("immutable") is True:
        if obj.get("immutable") is not True:
            errs.forbidden("immutable", "field is immutable when `immutable` is set")
        if data != _dict(old.get("data")):
            errs.forbidden("data", "field is immutable when `immutable` is set")


def _configmap(obj: dict[str, Any], old: dict[str, Any] | None, errs: _Errors) -> None:
    data, binary = _dict(obj.get("data")), _dict(obj.get("binaryData"))
    _validate_data_keys(data, "data", errs)
    _validate_data_keys(binary, "binaryData", errs)
    for key in set(data) & set(binary):
        errs.invalid("data", key, "duplicate of key present in binaryData")
    if old is not None and old.get("immutable") is True:
        if obj.get("immutable") is not True:
            errs.forbidden("immutable", "field is immutable when `immutable` is set")
        if data != _dict(old.get("data")) or binary != _dict(old.get("binaryData")):
            errs.forbidden("data", "field is immutable when `immutable` is set")


def _service(obj: dict[str, Any], old: dict[str, Any] | None, errs: _Errors) -> None:
    spec = _dict(obj.get("spec"))
    service_type = spec.get("type") or "ClusterIP"
    _enum(spec.get("type"), "spec.type", ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"], errs)
    ports = _list(spec.get("ports"))
    if not ports and service_type != "ExternalName" and spec.get("clusterIP") != "None":
        errs.required("spec.ports")
    names: set[str] = set()
    for index, port in enumerate(map(_dict, ports)):
        path = f"spec.ports[{index}]"
        name = _str(port.get("name"))
        if len(ports) > 1 and not name:
            errs.required(f"{path}.name")
        elif name:
            errs.each(f"{path}.name", name, dns1123_label_errors(name))
            if name in names:
                errs.duplicate(f"{path}.name", name)
            names.add(name)
        _port_number(port.get("port"), f"{path}.port", errs)
        _enum(port.get("protocol"), f"{path}.protocol", ["SCTP", "TCP", "UDP"], errs)
    validate_labels(spec.get("selector"), "spec.selector", errs)


def _namespace(obj: dict[str, Any], old: dict[str, Any] | None, errs: _Errors) -> None:
    for index, finalizer in enumerate(_list(_dict(obj.get("spec")).get("finalizers"))):
        errs.each(f"spec.finalizers[{index}]", finalizer, qualified_name_errors(_str(finalizer)))


_STANDARD_QUOTA_RESOURCES = frozenset(
    {
        "pods",
        "services",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "services.nodeports",
        "services.loadbalancers",
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.storage",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
    }
)


def _resource_quota(obj: dict[str, Any], old: dict[str, Any] | None, errs: _Errors) -> None:
    for key, value in _dict(_dict(obj.get("spec")).get("hard")).items():
        path = f"spec.hard[{key}]"
        if "/" in key:
            errs.each(path, key, qualified_name_errors(key))
        elif key not in _STANDARD_QUOTA_RESOURCES and not key.startswith(
            ("hugepages-", "requests.hugepages-")
        ):
            errs.invalid(path, key, "must be a standard resource for quota")
        quantity = _quantity(value)
        if quantity is not None and quantity.value < 0:
            errs.invalid(path, str(quantity), "must be greater than or equal to 0")


def _core_event(obj: dict[str, Any], old: dict[str, Any] | None, errs: _Errors) -> None:
    namespace = _str(_dict(obj.get("metadata")).get("namespace"))
    involved = _str(_dict(obj.get("involvedObject")).get("namespace"))
    if obj.get("eventTime"):
        _new_style_event(obj, "source", errs)
        if not involved and namespace not in ("default", "kube-system"):
            errs.invalid("involvedObject.namespace", involved, "does not match event.namespace")
    elif (involved and involved != namespace) or (not involved and namespace not in ("", "default")):
        errs.invalid("involvedObject.namespace", involved, "does not match event.namespace")


def _new_style_event(obj: dict[str, Any], controller_field: str, errs: _Errors) -> None:
    controller = _str(obj.get("reportingController") or obj.get("reportingComponent"))
    if not controller:
        errs.required(controller_field)
    else:
        errs.each(controller_field, controller, qualified_name_errors(controller))
    for field, limit in (("reportingInstance", 128), ("action", 128), ("reason", 128)):
        value = _str(obj.get(field))
        if not value:
            errs.required(field)
        elif len(value) > limit:
            errs.invalid(field, "", f"can have at most {limit} characters")


def _events_event(obj: dict[str, Any], old: dict[str, Any] | None, errs: _Errors) -> None:
    if not obj.get("eventTime"):
        errs.required("eventTime")
    event_type = obj.get("type")
    if event_type not in ("Normal", "Warning"):
        errs.invalid("type", "", f"has invalid value: {event_type or ''}")
    _new_style_event(obj, "reportingController", errs)


# --- rbac -----------------------------------------------------------------------------------

_RBAC_GROUP = "rbac.authorization.k8s.io"


def _rules(obj: dict[str, Any], namespaced: bool, errs: _Errors) -> None:
    for index, rule in enumerate(map(_dict, _list(obj.get("rules")))):
        path = f"rules[{index}]"
        if not _list(rule.get("verbs")):
            errs.required(f"{path}.verbs", "verbs must contain at least one value")
        urls = _list(rule.get("nonResourceURLs"))
        if urls:
            if namespaced:
                errs.invalid(
                    f"{path}.nonResourceURLs", urls, "namespaced rules cannot apply to non-resource URLs"
                )
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                errs.invalid(
                    f"{path}.nonResourceURLs",
                    urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                )
            continue
        if not _list(rule.get("apiGroups")):
            errs.required(f"{path}.apiGroups", "resource rules must supply at least one api group")
        if not _list(rule.get("resources")):
            errs.required(f"{path}.resources", "resource rules must supply at least one resource")


def _role(obj: dict[str, Any], old: dict[str, Any] | None, errs: _Errors) -> None:
    _rules(obj, True, errs)


def _cluster_role(obj: dict[str, Any], old: dict[str, Any] | None, errs: _Errors) -> None:
    if not _dict(obj.get("aggregationRule")):
        _rules(obj, False, errs)


def _binding(obj: dict[str, Any], old: dict[str, Any] | None, errs: _Errors, namespaced: bool) -> None:
    ref = _dict(obj.get("roleRef"))
    if ref.get("apiGroup") != _RBAC_GROUP:
        errs.not_supported("roleRef.apiGroup", ref.get("apiGroup", ""), [_RBAC_GROUP])
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if ref.get("kind") not in kinds:
        errs.not_supported("roleRef.kind", ref.get("kind", ""), kinds)
    name = _str(ref.get("name"))
    if not name:
        errs.required("roleRef.name")
    else:
        errs.each("roleRef.name", name, path_segment_errors(name))
    for index, subject in enumerate(map(_dict, _list(obj.get("subjects")))):
        _subject(subject, f"subjects[{index}]", namespaced, errs)
    if old is not None and _dict(old.get("roleRef")) != ref:
        shown = (
            f'rbac.RoleRef{{APIGroup:"{ref.get("apiGroup", "")}", Kind:"{ref.get("kind", "")}", '
            f'Name:"{ref.get("name", "")}"}}'
        )
        errs.invalid_shown("roleRef", shown, "cannot change roleRef")


def _subject(subject: dict[str, Any], path: str, namespaced: bool, errs: _Errors) -> None:
    name, kind = _str(subject.get("name")), subject.get("kind")
    if not name:
        errs.required(f"{path}.name")
    if kind == "ServiceAccount":
        if name:
            errs.each(f"{path}.name", name, dns1123_subdomain_errors(name))
        if subject.get("apiGroup"):
            errs.not_supported(f"{path}.apiGroup", subject["apiGroup"], [""])
        if not namespaced and not subject.get("namespace"):
            errs.required(f"{path}.namespace")
    elif kind in ("User", "Group"):
        if subject.get("apiGroup", _RBAC_GROUP) != _RBAC_GROUP:
            errs.not_supported(f"{path}.apiGroup", subject.get("apiGroup"), [_RBAC_GROUP])
    else:
        errs.not_supported(f"{path}.kind", kind or "", ["ServiceAccount", "User", "Group"])


def _role_binding(obj: dict[str, Any], old: dict[str, Any] | None, errs: _Errors) -> None:
    _binding(obj, old, errs, True)


def _cluster_role_binding(obj: dict[str, Any], old: dict[str, Any] | None, errs: _Errors) -> None:
    _binding(obj, old, errs, False)


# --- other groups ---------------------------------------------------------------------------


def _network_policy(obj: dict[str, Any], old: dict[str, Any] | None, errs: _Errors) -> None:
    spec = _dict(obj.get("spec"))
    _validate_label_selector(spec.get("podSelector"), "spec.podSelector", errs)
    for index, policy_type in enumerate(_list(spec.get("policyTypes"))):
        _enum(policy_type, f"spec.policyTypes[{index}]", ["Ingress", "Egress"], errs, required=True)
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for index, rule in enumerate(map(_dict, _list(spec.get(direction)))):
            path = f"spec.{direction}[{index}]"
            for port_index, port in enumerate(map(_dict, _list(rule.get("ports")))):
                port_path = f"{path}.ports[{port_index}]"
                _enum(port.get("protocol"), f"{port_path}.protocol", ["SCTP", "TCP", "UDP"], errs)
                number = port.get("port")
                if isinstance(number, int):
                    _port_number(number, f"{port_path}.port", errs)
                end = port.get("endPort")
                if isinstance(end, int) and isinstance(number, int) and end < number:
                    errs.invalid(f"{port_path}.endPort", end, "must be greater than or equal to `port`")
            for peer_index, peer in enumerate(map(_dict, _list(rule.get(peers_key)))):
                _network_peer(peer, f"{path}.{peers_key}[{peer_index}]", errs)


def _network_peer(peer: dict[str, Any], path: str, errs: _Errors) -> None:
    set_fields = [key for key in ("podSelector", "namespaceSelector", "ipBlock") if peer.get(key) is not None]
    if not set_fields:
        errs.required(path, "must specify a peer")
    elif "ipBlock" in set_fields and len(set_fields) > 1:
        errs.forbidden(path, "may not specify both ipBlock and another peer")
    for key in ("podSelector", "namespaceSelector"):
        if peer.get(key) is not None:
            _validate_label_selector(peer[key], f"{path}.{key}", errs)
    block = _dict(peer.get("ipBlock"))
    if peer.get("ipBlock") is not None:
        cidr = _str(block.get("cidr"))
        if not cidr:
            errs.required(f"{path}.ipBlock.cidr")
        elif _network(cidr) is None:
            errs.invalid(
                f"{path}.ipBlock.cidr",
                cidr,
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            )


def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(cidr, strict=False) if "/" in cidr else None
    except ValueError:
        return None


def _storage_class(obj: dict[str, Any], old: dict[str, Any] | None, errs: _Errors) -> None:
    provisioner = _str(obj.get("provisioner"))
    if not provisioner:
        errs.required("provisioner")
    else:
        errs.each("provisioner", provisioner, qualified_name_errors(provisioner.lower()))
    _enum(obj.get("reclaimPolicy"), "reclaimPolicy", ["Delete", "Retain"], errs)
    _enum(obj.get("volumeBindingMode"), "volumeBindingMode", ["Immediate", "WaitForFirstConsumer"], errs)
    if old is not None:
        if obj.get("parameters") != old.get("parameters"):
            errs.forbidden("parameters", "updates to parameters are forbidden.")
        if obj.get("provisioner") != old.get("provisioner"):
            errs.forbidden("provisioner", "updates to provisioner are forbidden.")
        if obj.get("reclaimPolicy") != old.get("reclaimPolicy"):
            errs.forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden.")


def _runtime_class(obj: dict[str, Any], old: dict[str, Any] | None, errs: _Errors) -> None:
    handler = _str(obj.get("handler"))
    if not handler:
        errs.required("handler")
    else:
        errs.each("handler", handler, dns1123_label_errors(handler))
    if old is not None and handler != old.get("handler"):
        errs.invalid("handler", handler, IMMUTABLE)


def _lease(obj: dict[str, Any], old: dict[str, Any] | None, errs: _Errors) -> None:
    spec = _dict(obj.get("spec"))
    duration = spec.get("leaseDurationSeconds")
    if isinstance(duration, int) and duration <= 0:
        errs.invalid("spec.leaseDurationSeconds", duration, "must be greater than 0")
    transitions = spec.get("leaseTransitions")
    if isinstance(transitions, int) and transitions < 0:
        errs.invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0")


Validator = Callable[[dict[str, Any], dict[str, Any] | None, _Errors], None]


def _nothing(obj: dict[str, Any], old: dict[str, Any] | None, errs: _Errors) -> None:
    """Kinds whose only checks are the metadata ones."""


_KINDS: dict[tuple[str, str], tuple[NameCheck, Validator]] = {
    ("", "Pod"): (dns1123_subdomain_errors, _pod),
    ("", "PersistentVolumeClaim"): (dns1123_subdomain_errors, _pvc),
    ("", "Secret"): (dns1123_subdomain_errors, _secret),
    ("", "ConfigMap"): (dns1123_subdomain_errors, _configmap),
    ("", "Service"): (dns1035_label_errors, _service),
    ("", "Namespace"): (dns1123_label_errors, _namespace),
    ("", "ResourceQuota"): (dns1123_subdomain_errors, _resource_quota),
    ("", "Event"): (dns1123_subdomain_errors, _core_event),
    ("events.k8s.io", "Event"): (dns1123_subdomain_errors, _events_event),
    ("", "ServiceAccount"): (dns1123_subdomain_errors, _nothing),
    ("", "Node"): (dns1123_subdomain_errors, _nothing),
    (_RBAC_GROUP, "Role"): (path_segment_errors, _role),
    (_RBAC_GROUP, "ClusterRole"): (path_segment_errors, _cluster_role),
    (_RBAC_GROUP, "RoleBinding"): (path_segment_errors, _role_binding),
    (_RBAC_GROUP, "ClusterRoleBinding"): (path_segment_errors, _cluster_role_binding),
    ("networking.k8s.io", "NetworkPolicy"): (dns1123_subdomain_errors, _network_policy),
    ("storage.k8s.io", "StorageClass"): (dns1123_subdomain_errors, _storage_class),
    ("node.k8s.io", "RuntimeClass"): (dns1123_subdomain_errors, _runtime_class),
    ("coordination.k8s.io", "Lease"): (dns1123_subdomain_errors, _lease),
}


def validate(group: str, version: str, kind: str, obj: dict[str, Any], old: dict[str, Any] | None = None):
    """Raise the real 422 (all causes at once) if ``obj`` (or the update from ``old``) is invalid."""
    name_check, validator = _KINDS.get((group, kind), (dns1123_subdomain_errors, _nothing))
    errs = _Errors()
    meta = _dict(obj.get("metadata"))
    _validate_metadata(meta, name_check, errs)
    if old is not None:
        _validate_metadata_update(meta, _dict(old.get("metadata")), errs)
    validator(obj, old, errs)
    if errs.causes:
        qualified = f"{kind}.{group}" if group else kind
        raise _invalid(qualified, group, kind, _str(meta.get("name")), errs.causes)


def _invalid(qualified: str, group: str, kind: str, name: str, causes: list[Cause]) -> APIError:
    """``errors.invalid`` with the group-qualified kind in the message, as the real server prints it."""
    error = errors.invalid(kind, group, name, causes)
    error.message = qualified + error.message[len(kind) :]
    return error
