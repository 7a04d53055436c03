"""The similarity study: every probe point of one or more models (and the pixels) on the same images, one forward
per model per batch (pipeline.py), and the layer x layer matrices with what is read off them (results.py). The
measures themselves (CKA, mutual k-NN, Information Imbalance) are metrics/."""
