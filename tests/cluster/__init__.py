"""A real kube-apiserver (v1.20.2) plus etcd for tests, with KServe's CRDs installed on demand."""
