"""``/v1/auth/obtain``, ``/v1/auth/refresh`` and ``/v1/auth/verify``: the token pair the UFDL clients log in
with."""
from ..permissions import Permission
from ..resources.root import Auth
from ..services.auth import MAX_CREDENTIAL_LENGTH
from ..services.validation import compile_schema, validate
from .api import api_view, read_json_object

_STRING = {"type": "string", "minLength": 1, "maxLength": MAX_CREDENTIAL_LENGTH}
# A token of any length (the body's size is bounded): one too long to be ours is a bad token, 401, upon which the
# UFDL client logs in again (design notes §9); a 400 for it stopped the client.
_TOKEN = {"type": "string", "minLength": 1}
OBTAIN = compile_schema({"type": "object", "required": ["username", "password"],
                         "properties": {"username": _STRING, "password": _STRING}})
REFRESH = compile_schema({"type": "object", "required": ["refresh"], "properties": {"refresh": _TOKEN}})
VERIFY = compile_schema({"type": "object", "required": ["token"], "properties": {"token": _TOKEN}})


@api_view(context=Auth, name="obtain", request_method="POST", permission=Permission.AUTHENTICATE)
def obtain(context, request):
    body = read_json_object(request)
    validate(OBTAIN, body)
    return request.auth_service.obtain(body["username"], body["password"])


@api_view(context=Auth, name="refresh", request_method="POST", permission=Permission.AUTHENTICATE)
def refresh(context, request):
    body = read_json_object(request)
    validate(REFRESH, body)
    return request.auth_service.refresh(body["refresh"])


@api_view(context=Auth, name="verify", request_method="POST", permission=Permission.AUTHENTICATE)
def verify(context, request):
    # The python client's UFDLServerContext._jwt_verify: 200 means valid; 401 (with a detail) means not.
    body = read_json_object(request)
    validate(VERIFY, body)
    request.auth_service.verify(body["token"])
    return {}
