"""An MLServer runtime on onnxruntime (runs in .bench-venvs/mlserver).

MLServer 1.7 ships no ONNX runtime, so this is a custom runtime written the way MLServer's
documentation describes: subclass ``MLModel``, create the session in ``load()``, decode
and encode with the Numpy codec in ``predict()``.
"""

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        path = self.settings.parameters.uri
        # The same session options as the bare endpoint: one intra-op thread per call.
        # onnxruntime's default (a spinning thread per core) would burn the CPU the
        # server itself needs and make this peer look worse than it has to.
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        features = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32, copy=False)
        (result,) = self.session.run([self.output_name], {self.input_name: features})
        return InferenceResponse(
            model_name=self.name,
            id=payload.id,
            outputs=[NumpyCodec.encode_output(self.output_name, result)],
        )
