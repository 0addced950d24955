"""Errors as TF Serving reports them: one code, one message, two front ends.

Codes are gRPC's (tensorflow::error::Code has the same numbers); REST maps
them to HTTP statuses with the table from TF Serving's http_rest_api_util.cc.
"""
from __future__ import annotations

import grpc

Code = grpc.StatusCode

HTTP_STATUS = {
    Code.OK: 200,
    Code.INVALID_ARGUMENT: 400, Code.FAILED_PRECONDITION: 400, Code.OUT_OF_RANGE: 400,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409, Code.ABORTED: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.UNIMPLEMENTED: 501,
    Code.UNAVAILABLE: 503,
    Code.DEADLINE_EXCEEDED: 504,
    Code.UNKNOWN: 500, Code.INTERNAL: 500, Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401, Code.CANCELLED: 499,
}


class ServingError(Exception):
    def __init__(self, code: Code, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


def invalid(msg: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, msg)


def not_found(msg: str) -> ServingError:
    return ServingError(Code.NOT_FOUND, msg)


def failed_precondition(msg: str) -> ServingError:
    return ServingError(Code.FAILED_PRECONDITION, msg)
