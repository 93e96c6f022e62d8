# Tests of workers/ (unit: onsale_unit(name libs...); integration: onsale_pytest(name file.py))
onsale_unit(test_inventory onsale_worker_core)
onsale_unit(test_partition onsale_worker_core)
onsale_unit(test_sale_rules onsale_worker_core)
onsale_unit(test_supervisor onsale_worker_core)
onsale_unit(test_checkout onsale_worker_core)
# project.c is linked into onsale-worker only (it needs Redis): built in here.
onsale_unit(test_project onsale_worker_core)
target_sources(test_project PRIVATE ${CMAKE_SOURCE_DIR}/workers/project.c)
onsale_pytest(it_worker_fifo test_worker_fifo.py)
onsale_pytest(it_worker_fencing test_worker_fencing.py)
onsale_pytest(it_worker_crash test_worker_crash.py)
# What the drain's faster writes keep: every column the binary COPY writes, the
# set-based event check (0012) refusing and locking.
onsale_pytest(it_worker_drain test_worker_drain.py)
onsale_pytest(it_control_lane test_control_lane.py)
onsale_pytest(it_hold_expiry_restart test_hold_expiry_restart.py)
onsale_pytest(it_unfulfillable test_unfulfillable.py)
