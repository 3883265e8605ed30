// Every scenario the lab ships, by name.
import type { Scenario } from './framework.ts';
import { mtlessBasic } from './mtless-basic.ts';
import { identityConfusion } from './identity-confusion.ts';
import { sockmapScenario } from './sockmap.ts';
import { wireguardScenario } from './wireguard.ts';
import { confusionMatrix } from './confusion-matrix.ts';
import { authLifetime } from './auth-lifetime.ts';
import { perConnectionMtls } from './per-connection-mtls.ts';
import { exposureWindow } from './exposure-window.ts';

export const SCENARIOS: Record<string, Scenario> = {
  [mtlessBasic.name]: mtlessBasic,
  [identityConfusion.name]: identityConfusion,
  [sockmapScenario.name]: sockmapScenario,
  [wireguardScenario.name]: wireguardScenario,
  [confusionMatrix.name]: confusionMatrix,
  [authLifetime.name]: authLifetime,
  [perConnectionMtls.name]: perConnectionMtls,
  [exposureWindow.name]: exposureWindow,
};

