*"
 

etcd-1HZ0123456789abcdef