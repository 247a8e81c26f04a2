"*
(
etcd-1
t
S02{"member":"etcd-1"}