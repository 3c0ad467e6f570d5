"""Video data: dataset indexes, OpenCV decoding, tf.data pipelines, synthetic data, TFRecord packing."""
