/**
 * A laid-out statechart as plain data (what statechartLayout.ts computes and statechartSvg.ts draws), and
 * the text metrics both sides assume. Kept apart from the layout code so the browser bundle, which only
 * draws, does not pull in elkjs.
 */
import type { ChartStateType } from './statechart.ts';

export const FONT_SIZE = 11;
/** Advance of a monospace glyph at FONT_SIZE (0.6 em, as DejaVu Sans Mono and most monospace faces). */
export const CHAR_W = 6.7;
export const LINE_H = 14;

export interface Point {
  x: number;
  y: number;
}
/** One line of text inside a state or on an arrow, with the transitions it stands for. */
export interface LayoutRow {
  text: string;
  transitionIds: string[];
}
export interface LayoutState {
  id: string;
  key: string;
  type: ChartStateType;
  /** Absolute position of the box's top-left corner. */
  x: number;
  y: number;
  width: number;
  height: number;
  rows: LayoutRow[];
  children: LayoutState[];
  /** Centre of the initial-state dot of a compound state. */
  initial: Point | null;
}
export interface LayoutLabel {
  x: number;
  y: number;
  width: number;
  height: number;
  rows: LayoutRow[];
}
export interface LayoutEdge {
  id: string;
  source: string;
  target: string;
  /** Empty for the arrow from a compound state's initial dot. */
  transitionIds: string[];
  points: Point[];
  label: LayoutLabel | null;
}
export interface StatechartLayout {
  machineId: string;
  width: number;
  height: number;
  root: LayoutState;
  edges: LayoutEdge[];
}

