/** Public surface of src/vmm: one typed way to boot, watch and stop a micro-VM. QEMU argv and QMP stay private. */
export {
  launchMicroVm,
  attachMicroVm,
  bootWithWatchdog,
  qemuVmm,
  MicroVm,
  ORIGIN_FILE,
  type WatchdogOptions,
  type QemuOptions,
} from './microvm.ts';
export { probeAccelerator, chooseAccelerator, hostTscKhz, type AcceleratorChoice, type AccelFacts } from './accel.ts';
export { findQemu, qemuVersion } from './qemu-binary.ts';
export { cgroupMode, describeCgroups, type CgroupMode } from './cgroup.ts';
export { userIds } from './prejail.ts';
export { describeVirtiofsd, type VirtiofsdView } from './virtiofsd.ts';
export { isPasstCommand, findPasst, checkPasst, DEFAULT_PASST, DEFAULT_PASST_GUARD } from './passt.ts';
export type { MicroVmConfig, DiskSpec, NicSpec, ShareSpec, VmExit, Vm, Vmm, VmJail } from './types.ts';
