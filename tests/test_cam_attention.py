"""CamSpatialAttention against a NumPy computation of eqs. (1)-(2) as EgoRCNN runs them."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_testing import run_layer_test
from model_testing import softmax

from kerasflow.layers import CamSpatialAttention, ConvLSTM, egornn_convlstm
from kerasflow.layers.convlstm import GlorotNormalPerGate


def numpy_cam_attention(features, attended, kernel, bias):
    logits = features.mean(axis=(1, 2)) @ kernel + bias
    winner = logits.argmax(axis=-1)
    cam = np.einsum("bhwc,cb->bhw", features, kernel[:, winner])
    attention = softmax(cam.reshape(len(cam), -1)).reshape(cam.shape)
    return attended * attention[..., None], attention, cam, winner


def _layer_and_inputs(seed=0, classes=5):
    rng = np.random.default_rng(seed)
    features = rng.random((3, 4, 5, 8)).astype("float32")
    attended = rng.normal(size=(3, 4, 5, 8)).astype("float32")
    layer = CamSpatialAttention(num_classes=classes)
    layer.build([features.shape, attended.shape])
    kernel = rng.normal(size=(8, classes)).astype("float32")
    bias = rng.normal(size=(classes,)).astype("float32")
    layer.set_weights([kernel, bias])
    return layer, features, attended, kernel, bias


def test_matches_numpy_and_sums_to_one():
    layer, features, attended, kernel, bias = _layer_and_inputs()
    output, attention = map(keras.ops.convert_to_numpy, layer([features, attended], return_attention=True))
    want_output, want_attention, cam, _ = numpy_cam_attention(features, attended, kernel, bias)
    np.testing.assert_allclose(attention, want_attention, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(output, want_output, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(attention.sum(axis=(1, 2)), 1.0, atol=1e-6)
    for b in range(len(cam)):
        assert np.argmax(attention[b]) == np.argmax(cam[b])


def test_peaks_where_the_winning_class_cam_peaks():
    # Class 1 wins (its bias is large); its CAM weights select channel 0, which is hot at (3, 1).
    features = np.zeros((1, 5, 5, 2), "float32")
    features[0, 3, 1, 0] = 4.0
    features[0, 0, 4, 1] = 9.0  # hot in channel 1, which only class 0 looks at
    layer = CamSpatialAttention(num_classes=2)
    layer.build(features.shape)
    layer.set_weights([np.array([[0.0, 1.0], [1.0, 0.0]], "float32"), np.array([0.0, 10.0], "float32")])
    _, attention = layer(features, return_attention=True)
    attention = keras.ops.convert_to_numpy(attention)[0]
    assert np.unravel_index(attention.argmax(), attention.shape) == (3, 1)
    # softmax of a CAM that is 4 at one cell and 0 at the 24 others
    np.testing.assert_allclose(attention[3, 1], np.exp(4.0) / (np.exp(4.0) + 24.0), rtol=1e-5)


def test_single_input_attends_itself_and_gradient_skips_bias():
    layer, features, _, kernel, bias = _layer_and_inputs(seed=1)
    want, _, _, winner = numpy_cam_attention(features, features, kernel, bias)
    with tf.GradientTape() as tape:
        output = layer(features)
        loss = tf.reduce_sum(output**2)
    grad_kernel, grad_bias = tape.gradient(loss, [layer.kernel, layer.bias])
    np.testing.assert_allclose(output.numpy(), want, rtol=1e-5, atol=1e-6)
    assert grad_bias is None or np.all(grad_bias.numpy() == 0)
    grad_kernel = grad_kernel.numpy()
    # Only the winning classes' kernel columns receive gradient (through the CAM).
    used = set(winner.tolist())
    for c in range(kernel.shape[1]):
        assert (np.abs(grad_kernel[:, c]).sum() > 0) == (c in used)


@pytest.mark.large
def test_layer_contract_single_input():
    features = np.random.default_rng(2).random((2, 7, 7, 16)).astype("float32")
    run_layer_test(CamSpatialAttention, dict(num_classes=7, name="cam"), features, (2, 7, 7, 16))


@pytest.mark.large
def test_layer_contract_two_inputs_with_attention_map():
    rng = np.random.default_rng(3)
    features, attended = rng.random((2, 2, 5, 4, 8)).astype("float32")
    layer = run_layer_test(
        CamSpatialAttention, dict(num_classes=5), [features, attended], [(2, 5, 4, 8), (2, 5, 4)],
        call_kwargs=dict(return_attention=True),
    )
    assert [w.path.split("/")[-1] for w in layer.trainable_weights] == ["kernel"]  # the bias cannot learn


@pytest.mark.large
def test_convlstm_layer_contract():
    clips = np.random.default_rng(4).random((2, 3, 5, 5, 2)).astype("float32")
    run_layer_test(egornn_convlstm, dict(units=4), clips, [(2, 5, 5, 4)] * 3)
    run_layer_test(ConvLSTM, dict(units=3, kernel_size=1), clips, [(2, 5, 5, 3)] * 3)


def _numpy_convlstm(x, kernel, recurrent, bias):
    """The standard ConvLSTM cell written out in NumPy, one 'same' 3x3 convolution per gate."""

    def conv(inputs, weights):  # (B, H, W, C) * (3, 3, C, K), zero padding
        height, width = inputs.shape[1:3]
        padded = np.pad(inputs, [(0, 0), (1, 1), (1, 1), (0, 0)])
        return sum(np.einsum("bhwc,ck->bhwk", padded[:, dy:dy + height, dx:dx + width], weights[dy, dx])
                   for dy in range(3) for dx in range(3))

    units = recurrent.shape[2]
    gate = [slice(g * units, (g + 1) * units) for g in range(4)]
    sigmoid = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    h = c = np.zeros((*x.shape[:1], *x.shape[2:4], units))
    for t in range(x.shape[1]):
        z = [conv(x[:, t], kernel[..., g]) + bias[g] + conv(h, recurrent[..., g]) for g in gate]
        c = sigmoid(z[1]) * c + sigmoid(z[0]) * np.tanh(z[2])
        h = sigmoid(z[3]) * np.tanh(c)
    return h, c


def test_convlstm_computes_the_standard_cell_as_keras_convlstm2d_does():
    # Same weights (a non-zero bias) in NumPy's cell, Keras' ConvLSTM2D and ours: h_T and c_T agree.
    rng = np.random.default_rng(7)
    clips = rng.standard_normal((2, 4, 5, 6, 3)).astype("float32")
    layer = ConvLSTM(5)
    layer.build(clips.shape)
    layer.bias.assign(rng.standard_normal(20).astype("float32"))
    kernel, recurrent, bias = layer.get_weights()
    _, h, c = map(keras.ops.convert_to_numpy, layer(clips))
    want_h, want_c = _numpy_convlstm(clips.astype("float64"), kernel, recurrent, bias)
    np.testing.assert_allclose(h, want_h, atol=1e-5)
    np.testing.assert_allclose(c, want_c, atol=1e-5)
    keras_layer = keras.layers.ConvLSTM2D(5, 3, padding="same", return_state=True)
    keras_layer.build(clips.shape)
    keras_layer.set_weights([kernel, recurrent, bias])
    _, keras_h, keras_c = map(keras.ops.convert_to_numpy, keras_layer(clips))
    np.testing.assert_allclose(c, keras_c, atol=1e-5)
    np.testing.assert_allclose(h, keras_h, atol=1e-5)
    assert float(np.abs(want_c).max()) > 0.5  # the states are not near zero, so the match means something


def test_convlstm_needs_a_known_number_of_frames():
    for shape in ((None, 5, 5, 2), (3, None, 5, 2)):
        with pytest.raises(ValueError, match="T, H, W and C known"):
            ConvLSTM(4)(keras.Input(shape))


def test_convlstm_has_egornn_parameter_count_and_cell_state():
    inputs = keras.Input((3, 7, 7, 512))
    _, h, c = egornn_convlstm(512)(inputs)
    model = keras.Model(inputs, [h, c])
    assert model.count_params() == 18_876_416
    small = egornn_convlstm(4)
    _, h, c = small(np.random.default_rng(0).random((1, 3, 5, 5, 2)).astype("float32"))
    assert h.shape == c.shape == (1, 5, 5, 4)
    # h = o * tanh(c) with o in (0, 1): |h| < |tanh(c)|, so c is not h.
    assert np.all(np.abs(h.numpy()) <= np.abs(np.tanh(c.numpy())) + 1e-7)


def test_convlstm_initialises_each_gate_as_its_own_xavier_normal_conv():
    # EgoRCNN: one xavier_normal 3x3 conv per gate, std sqrt(2 / (9 C_in + 9 units)); biases 0.
    channels, units = 32, 64
    layer = egornn_convlstm(units)
    layer.build((None, 3, 7, 7, channels))
    kernel, recurrent, bias = layer.get_weights()
    assert kernel.shape == (3, 3, channels, 4 * units) and recurrent.shape == (3, 3, units, 4 * units)
    np.testing.assert_array_equal(bias, 0.0)
    for weights, fan_in in ((kernel, channels), (recurrent, units)):
        want = math.sqrt(2.0 / (9 * fan_in + 9 * units))
        fused = math.sqrt(2.0 / (9 * fan_in + 9 * 4 * units))  # Keras' glorot_normal on the whole kernel
        gates = [weights[..., g * units : (g + 1) * units] for g in range(4)]
        for gate in gates:  # 18,432 or 36,864 values each: a sample std within about 1 %
            assert gate.std() == pytest.approx(want, rel=0.03) and abs(gate.mean()) < 0.05 * want
            assert abs(gate.std() - fused) > 0.3 * fused
        assert abs(np.corrcoef(gates[0].ravel(), gates[1].ravel())[0, 1]) < 0.05  # not one draw repeated


def test_per_gate_initializer_serializes_and_checks_the_gates():
    init = GlorotNormalPerGate(gates=4, seed=3)
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(init))
    assert type(revived) is GlorotNormalPerGate and revived.get_config() == {"gates": 4, "seed": 3}
    np.testing.assert_array_equal(init((3, 3, 2, 8)), revived((3, 3, 2, 8)))
    with pytest.raises(ValueError, match="gates"):
        init((3, 3, 2, 6))
