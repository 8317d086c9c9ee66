"""KServe's Python model server with an onnxruntime model class (runs in .bench-venvs/kserve).

The custom-model pattern from KServe's documentation: subclass ``kserve.Model``, load in
``load()``, answer in ``predict()``, start with ``ModelServer().start([model])`` and the
stock command-line arguments. Everything else is left as shipped, including the
per-request latency log line (``--enable_latency_logging`` defaults to true).

Usage: python kserve_peer.py --model_name mlp --model_path PATH --http_port P --grpc_port G
"""

import argparse
import uuid

import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server


class OnnxModel(Model):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.ready = False

    def load(self) -> bool:
        # The same session options as the bare endpoint: one intra-op thread per call.
        # onnxruntime's default (a spinning thread per core) would burn the CPU the
        # server itself needs and make this peer look worse than it has to.
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.ready = True
        return self.ready

    async def predict(self, payload, headers=None, response_headers=None):
        assert isinstance(payload, InferRequest)
        features = payload.inputs[0].as_numpy().astype(np.float32, copy=False)
        (result,) = self.session.run([self.output_name], {self.input_name: features})
        output = InferOutput(
            name=self.output_name, shape=list(result.shape), datatype="FP32", data=result
        )
        return InferResponse(
            model_name=self.name,
            infer_outputs=[output],
            response_id=payload.id or str(uuid.uuid4()),
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_path", required=True)
    args, _ = parser.parse_known_args()
    model = OnnxModel(args.model_name, args.model_path)
    model.load()
    ModelServer().start([model])
