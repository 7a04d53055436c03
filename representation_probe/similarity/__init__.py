"""Similarity of representations within and across models: linear CKA (biased, debiased, minibatch),
mutual k-NN alignment and Information Imbalance, as pure functions of feature matrices."""

from representation_probe.similarity.cka import MinibatchCKA, center_gram, cka_matrix, hsic, linear_cka
from representation_probe.similarity.neighbours import (information_imbalance, information_imbalance_matrix,
                                                        mutual_knn, mutual_knn_matrix)

__all__ = ["MinibatchCKA", "center_gram", "cka_matrix", "hsic", "information_imbalance", "information_imbalance_matrix",
           "linear_cka", "mutual_knn", "mutual_knn_matrix"]
