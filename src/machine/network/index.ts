/**
 * Host side of container networking (used by the machine daemon): networks on Linux bridges with IPAM, taps for
 * micro-VMs, NAT, published ports, isolation, embedded DNS; or user-mode networking (passt) when rootless.
 */
export { NetworkManager, DEFAULT_NETWORK, type EndpointRequest, type NetworkManagerOptions, type CreateNetworkOptions } from './manager.ts';
export type { NetworkRecord, Endpoint } from './state.ts';
export { parsePortSpec, parseExposedPort, publishAllPorts, type PortBinding } from './ports.ts';
