"""The bare endpoint: Starlette on uvicorn calling onnxruntime directly, one request per
call, no batching, no framework model layer (runs in .bench-venvs/bare).

It marks what a plain server without batching reaches. Uvicorn runs as its docs
recommend for speed: uvloop and httptools (``uvicorn[standard]``), access log off.

Usage: python bare_peer.py MODEL_NAME MODEL_PATH PORT
"""

import sys

import numpy as np
import onnxruntime as ort
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MODEL_NAME, MODEL_PATH, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
# One thread per call: a single small request gains nothing from intra-op parallelism,
# and onnxruntime's default (one spinning thread per core) burns the CPU the HTTP layer
# needs. This makes the bare endpoint as strong a baseline as it can be.
options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(MODEL_PATH, options, providers=["CPUExecutionProvider"])
INPUT = session.get_inputs()[0].name
OUTPUT = session.get_outputs()[0].name


async def infer(request: Request) -> Response:
    document = orjson.loads(await request.body())
    tensor = document["inputs"][0]
    features = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
    (result,) = session.run([OUTPUT], {INPUT: features})
    body = orjson.dumps(
        {
            "model_name": MODEL_NAME,
            "outputs": [
                {
                    "name": OUTPUT,
                    "datatype": "FP32",
                    "shape": list(result.shape),
                    "data": result.ravel(),
                }
            ],
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    return Response(body, media_type="application/json")


async def ready(request: Request) -> Response:
    return Response(b'{"ready":true}', media_type="application/json")


app = Starlette(
    routes=[
        Route(f"/v2/models/{MODEL_NAME}/infer", infer, methods=["POST"]),
        Route("/v2/health/ready", ready),
    ]
)

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=PORT,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
