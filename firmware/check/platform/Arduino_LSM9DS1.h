// Declarations of the Arduino_LSM9DS1 library API (Nano 33 BLE Rev1 IMU) the generated
// sketches use, so that `tflmp firmware --check` compiles TFLMP_USE_IMU=1 (never linked).
#pragma once
class LSM9DS1Class {
 public:
  int begin();
  int readAcceleration(float& x, float& y, float& z);  // g
  int accelerationAvailable();
  int readGyroscope(float& x, float& y, float& z);  // degrees/s
  int gyroscopeAvailable();
};
extern LSM9DS1Class IMU;
