# Tests of workers/ (unit: onsale_unit(name libs...); integration: onsale_pytest(name file.py))
onsale_unit(test_inventory onsale_worker_core)
onsale_unit(test_partition onsale_worker_core)
onsale_pytest(it_worker_fifo test_worker_fifo.py)
