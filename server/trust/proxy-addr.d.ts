// proxy-addr ships no types (it comes with express); only what peer-address.ts uses.
declare module 'proxy-addr' {
  import type { IncomingHttpHeaders } from 'node:http';
  export type TrustFunction = (address: string, hop: number) => boolean;
  export interface AddressedRequest {
    headers: IncomingHttpHeaders;
    socket: { remoteAddress?: string | undefined };
  }
  interface ProxyAddr {
    (req: AddressedRequest, trust: TrustFunction): string | undefined;
    compile(val: string | string[]): TrustFunction;
  }
  const proxyaddr: ProxyAddr;
  export default proxyaddr;
}
