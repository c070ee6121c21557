module crictlbuild

go 1.24

require sigs.k8s.io/cri-tools @CRICTL_VERSION@
