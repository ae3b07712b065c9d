/**
 * Accelerator choice: KVM only where it can really boot a stock guest kernel, otherwise TCG, always with the
 * reason. A `/dev/kvm` alone is not enough (paravirtual nested KVM such as kvm_pvm exposes one but cannot boot a
 * normal kernel); we also need hardware virtualisation flags (vmx/svm) and the kvm_intel or kvm_amd module.
 */
import { access, constants, readFile } from 'node:fs/promises';

/** The accelerator QEMU will use and why. */
export interface AcceleratorChoice {
  accel: 'kvm' | 'tcg';
  reason: string;
}

/** Facts the probe looks at; injectable so that the decision itself is testable. */
export interface AccelFacts {
  override: string | undefined;
  kvmDeviceUsable: boolean;
  cpuFlags: Set<string>;
  kvmModules: string[];
}

/** The pure decision over gathered facts. */
export function chooseAccelerator(facts: AccelFacts): AcceleratorChoice {
  if (facts.override === 'kvm' || facts.override === 'tcg') {
    return { accel: facts.override, reason: `forced by BOSON_ACCEL=${facts.override}` };
  }
  if (!facts.kvmDeviceUsable) return { accel: 'tcg', reason: '/dev/kvm is missing or not accessible' };
  const hasVirt = facts.cpuFlags.has('vmx') || facts.cpuFlags.has('svm');
  if (!hasVirt)
    return {
      accel: 'tcg',
      reason: '/dev/kvm exists but the CPU has no vmx/svm flag (paravirtual or nested KVM cannot boot a stock guest kernel)',
    };
  const hw = facts.kvmModules.filter((m) => m === 'kvm_intel' || m === 'kvm_amd');
  if (hw.length === 0) return { accel: 'tcg', reason: '/dev/kvm exists but neither kvm_intel nor kvm_amd is loaded' };
  return { accel: 'kvm', reason: `hardware virtualisation (${hw.join(', ')}) with a usable /dev/kvm` };
}

/** Reads this host's facts (/dev/kvm, /proc/cpuinfo, /sys/module); `override` is the BOSON_ACCEL setting. */
export async function gatherAccelFacts(override?: string): Promise<AccelFacts> {
  let kvmDeviceUsable = false;
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
    kvmDeviceUsable = true;
  } catch {
    // not usable
  }
  const cpuFlags = new Set<string>();
  try {
    const cpuinfo = await readFile('/proc/cpuinfo', 'utf8');
    const line = cpuinfo.split('\n').find((l) => l.startsWith('flags'));
    for (const flag of line?.split(':')[1]?.trim().split(/\s+/) ?? []) cpuFlags.add(flag);
  } catch {
    // no /proc: no flags
  }
  const kvmModules: string[] = [];
  for (const mod of ['kvm_intel', 'kvm_amd', 'kvm_pvm']) {
    try {
      await access(`/sys/module/${mod}`);
      kvmModules.push(mod);
    } catch {
      // not loaded
    }
  }
  return { override, kvmDeviceUsable, cpuFlags, kvmModules };
}

/** The probe's answers, by override: the host's facts do not change while a process runs. */
const probed = new Map<string | undefined, Promise<AcceleratorChoice>>();

/** Probes once per process (per `override`, the BOSON_ACCEL setting) and returns the accelerator to use. */
export function probeAccelerator(override?: string): Promise<AcceleratorChoice> {
  let choice = probed.get(override);
  if (!choice) probed.set(override, (choice = gatherAccelFacts(override).then(chooseAccelerator)));
  return choice;
}

/** The host TSC frequency in kHz (for the guest's tsc_early_khz under TCG), or undefined if unknown. */
export async function hostTscKhz(): Promise<number | undefined> {
  try {
    const khz = Number((await readFile('/sys/devices/system/cpu/cpu0/tsc_freq_khz', 'utf8')).trim());
    if (Number.isFinite(khz) && khz > 0) return khz;
  } catch {
    // fall through to cpuinfo
  }
  try {
    const cpuinfo = await readFile('/proc/cpuinfo', 'utf8');
    const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo)?.[1]);
    if (Number.isFinite(mhz) && mhz > 0) return Math.round(mhz * 1000);
  } catch {
    // unknown
  }
  return undefined;
}
