/**
 * The RPCs of runtime.v1 that Boson does not serve, each with the precise gRPC status and the reason a caller is
 * told. Every RPC of the proto is either served (src/cri/server.ts's handlers) or listed here; a test keeps that so.
 */
import * as grpc from '@grpc/grpc-js';

/** A refused RPC: the status it answers with and why. */
export interface Refusal {
  status: grpc.status.UNIMPLEMENTED | grpc.status.FAILED_PRECONDITION;
  why: string;
}

const streamList = (list: string): Refusal => ({
  status: grpc.status.UNIMPLEMENTED,
  why: `Boson does not stream this list yet: call ${list}, which answers the same`,
});

/** RPC name -> its refusal. */
export const REFUSED_RPCS: Readonly<Record<string, Refusal>> = {
  StreamPodSandboxes: streamList('ListPodSandbox'),
  StreamContainers: streamList('ListContainers'),
  StreamContainerStats: streamList('ListContainerStats'),
  StreamPodSandboxStats: streamList('ListPodSandboxStats'),
  StreamPodSandboxMetrics: streamList('ListPodSandboxMetrics'),
  StreamImages: streamList('ListImages'),
  UpdatePodSandboxResources: {
    status: grpc.status.FAILED_PRECONDITION,
    why: "a pod's micro-VM gets its memory and vCPUs when it boots (QEMU microvm has no memory or CPU hot-plug): run the pod again with the new resources",
  },
  ListMetricDescriptors: { status: grpc.status.UNIMPLEMENTED, why: 'Boson exports no CRI pod metrics (its daemon serves /metrics)' },
  ListPodSandboxMetrics: { status: grpc.status.UNIMPLEMENTED, why: 'Boson exports no CRI pod metrics (its daemon serves /metrics)' },
  CheckpointContainer: {
    status: grpc.status.UNIMPLEMENTED,
    why: 'checkpointing a container of a pod VM is not supported (a micro-VM is snapshotted whole, not per container)',
  },
  CheckpointPod: { status: grpc.status.UNIMPLEMENTED, why: 'pod VM snapshots are not implemented' },
  RestorePod: { status: grpc.status.UNIMPLEMENTED, why: 'pod VM snapshots are not implemented' },
  GetContainerEvents: {
    status: grpc.status.UNIMPLEMENTED,
    why: 'Boson does not stream container events over CRI: kubelet falls back to relisting (generic PLEG)',
  },
};
